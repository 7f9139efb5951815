"""TFMA's metrics, plots and validation for an EvalConfig, over whole arrays.

Ours, not TFMA's Beam evaluator: its metric combiners take one example at
a time in Python (`add_input`), and with its per-row extracts and the
pickling between stages that bounds an evaluation at about 1,300 eval rows
a second on two cores, however fast the model predicts (profiled on the
taxi data at 10x: 26 s of 86 s in `add_input` alone, 13 s splitting
features into rows, 9 s pickling). TFMA has no batched path for them in
0.46.

Everything but the per-example accumulation is TFMA's own: the metric
computations come from `metric_specs.to_computations` of the EvalConfig,
so the keys, the derived metrics (AUC, precision, the calibration plot,
the confusion matrix plot...), the diffs against the baseline model, the
validation against thresholds and the files written are TFMA's, and
`tfma.load_metrics`, `load_plots` and `load_validation_result` read them.
Only each combiner's accumulation is replaced by numpy over the slice's
rows, giving the value its `extract_output` gives; a combiner without a
replacement here is an error that names it.
"""

import dataclasses
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from tensorflow_model_analysis import constants as tfma_constants
from tensorflow_model_analysis.contrib.aggregates import binary_confusion_matrices as bcm_aggregates
from tensorflow_model_analysis.evaluators import (
  metrics_plots_and_validations_evaluator as tfma_eval,
)
from tensorflow_model_analysis.evaluators import metrics_validator
from tensorflow_model_analysis.metrics import (
  calibration,
  calibration_histogram,
  metric_specs,
  metric_types,
  multi_class_confusion_matrix_metrics,
)
from tensorflow_model_analysis.proto import config_pb2
from tensorflow_model_analysis.slicer import slicer_lib
from tensorflow_model_analysis.utils import model_util
from tensorflow_model_analysis.writers import eval_config_writer
from tensorflow_model_analysis.writers import metrics_plots_and_validations_writer as tfma_writer

from components import binary_metrics, tfma_tuning
from components import paired_comparison as pc
from components.eval_model import FeatureValues

_NO_PREDICTED_CLASS = multi_class_confusion_matrix_metrics.NO_PREDICTED_CLASS_ID
SliceKey = tuple  # TFMA's: () overall, ((column, value),) for one feature value


@dataclasses.dataclass(frozen=True)
class ModelRows:
  """One model's labels and predictions over the eval rows (or a slice's)."""

  labels: np.ndarray
  predictions: np.ndarray

  def take(self, rows: np.ndarray) -> 'ModelRows':
    return ModelRows(self.labels[rows], self.predictions[rows])

  def column(self) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions of a single-output model, as float64 vectors."""
    if self.predictions.size != len(self.predictions):
      raise ValueError(
        f'the prediction has {self.predictions.size // max(len(self.predictions), 1)} values '
        'a row; this metric needs one (check the task type and prediction key)'
      )
    return pc.column(self.labels, self.predictions)


def _mean(values: np.ndarray) -> float:
  return float(np.mean(values)) if len(values) else float('nan')


def _histogram(combiner, rows: ModelRows):
  labels, predictions = rows.column()
  scaled = (predictions - combiner._left) / combiner._range * combiner._num_buckets + 1
  bucketed = (
    scaled
    if combiner._prediction_based_bucketing
    else ((labels - combiner._left) / combiner._range * combiner._num_buckets + 1)
  )
  index = np.clip(np.floor(bucketed), 0, combiner._num_buckets + 1).astype(np.int64)
  size = combiner._num_buckets + 2
  examples = np.bincount(index, minlength=size)
  sums = np.bincount(index, labels, size), np.bincount(index, predictions, size)
  return [
    calibration_histogram.Bucket(int(i), float(sums[0][i]), float(sums[1][i]), float(examples[i]))
    for i in np.flatnonzero(examples)
  ]


def _binary_pairs(key, rows: ModelRows) -> tuple[np.ndarray, np.ndarray]:
  """Labels and predictions as TFMA pairs them for a binary metric of `key`:
  one class against the rest when the key names a class."""
  if key.sub_key is not None and key.sub_key.class_id is not None:
    classes, probabilities = pc.class_probabilities(rows.labels, rows.predictions)
    k = key.sub_key.class_id
    return (classes == k).astype(np.float64), probabilities[:, k]
  if key.sub_key is not None:
    raise NotImplementedError(f'{key}: only class-id sub keys are computed here')
  return rows.column()


def _binary_matrices(combiner, rows: ModelRows):
  labels, predictions = _binary_pairs(combiner._key, rows)
  positive = labels == 1.0
  accumulator = {}
  for threshold in combiner._binary_confusion_matrices._thresholds:
    predicted = predictions > threshold
    matrix = bcm_aggregates.Matrix(
      tp=float(np.sum(positive & predicted)),
      tn=float(np.sum(~positive & ~predicted)),
      fp=float(np.sum(~positive & predicted)),
      fn=float(np.sum(positive & ~predicted)),
    )
    accumulator[threshold] = bcm_aggregates._ThresholdEntry(matrix, [], [], [], [])
  return combiner._binary_confusion_matrices.extract_output(accumulator)


def _multi_class_matrices(combiner, rows: ModelRows):
  classes, probabilities = pc.class_probabilities(rows.labels, rows.predictions)
  predicted = np.argmax(probabilities, axis=1)
  top = probabilities[np.arange(len(classes)), predicted]
  result = multi_class_confusion_matrix_metrics.Matrices()
  for threshold in combiner._thresholds:
    ids = np.where(
      top <= threshold, multi_class_confusion_matrix_metrics.NO_PREDICTED_CLASS_ID, predicted
    )
    pairs, counts = np.unique(np.stack([classes, ids], axis=1), axis=0, return_counts=True)
    result[threshold] = {
      multi_class_confusion_matrix_metrics.MatrixEntryKey(int(a), int(p)): float(c)
      for (a, p), c in zip(pairs, counts, strict=True)
    }
  return result


def _totals(rows: ModelRows):
  labels, predictions = rows.column()
  totals = calibration._WeightedLabelsPredictionsExamples()
  totals.total_weighted_labels = float(np.sum(labels))
  totals.total_weighted_predictions = float(np.sum(predictions))
  totals.total_weighted_examples = float(len(labels))
  return totals


def _mean_error(error: Callable) -> Callable:
  """A combiner of one key giving the mean of `error(labels, predictions)`."""
  return _first(lambda _, rows: _mean(error(*rows.column())))


# The Keras metrics TFMA wraps (tf_metric_wrapper), by their key's name.
_KERAS = {
  'sparse_categorical_accuracy': lambda r: _mean(pc.accuracy(r.labels, r.predictions)),
  'sparse_categorical_crossentropy': lambda r: _mean(pc.cross_entropy(r.labels, r.predictions)),
  'root_mean_squared_error': lambda r: float(
    np.sqrt(_mean(pc.squared_error(r.labels, r.predictions)))
  ),
}


def _keras(computation, rows: ModelRows) -> dict:
  missing = [k.name for k in computation.keys if k.name not in _KERAS]
  if missing:
    raise NotImplementedError(f'Keras metric(s) {missing} have no batched computation here')
  return {k: _KERAS[k.name](rows) for k in computation.keys}


def _first(value: Callable) -> Callable:
  """A combiner of one key giving `value(combiner, rows)`."""
  return lambda computation, rows: {computation.keys[0]: value(computation.combiner, rows)}


# TFMA's combiner class -> (computation, rows) -> what its extract_output gives.
_COMBINERS = {
  '_CalibrationHistogramCombiner': _first(_histogram),
  '_BinaryConfusionMatrixCombiner': _first(_binary_matrices),
  '_MultiClassConfusionMatrixCombiner': _first(_multi_class_matrices),
  '_WeightedLabelsPredictionsExamplesCombiner': _first(lambda _, rows: _totals(rows)),
  '_MeanAbsoluteErrorCombiner': _mean_error(pc.absolute_error),
  '_MeanSquaredErrorCombiner': _mean_error(pc.squared_error),
  'LogLossCombiner': _mean_error(pc.log_loss),
  '_ExampleCountCombiner': lambda c, rows: {k: float(len(rows.labels)) for k in c.keys},
  '_CompilableMetricsCombiner': _keras,
}


def _accumulate(computation, rows: ModelRows) -> dict:
  """What the computation's combiner would give for these rows."""
  combiner = computation.combiner
  kind = type(combiner).__name__
  if kind == 'LogLossCombiner' and not isinstance(combiner, binary_metrics.LogLossCombiner):
    kind = None
  if kind not in _COMBINERS:
    names = [str(k.name) for k in computation.keys]
    raise NotImplementedError(f'metric {names} ({kind}) has no batched computation here')
  return _COMBINERS[kind](computation, rows)


def slices(eval_config: config_pb2.EvalConfig, features: dict[str, FeatureValues], rows: int):
  """(slice key, row indices) of every slice the config asks for, as TFMA
  slices: the whole set, and one slice per value of each slice feature
  holding the rows that have that value."""
  result = []
  for spec in eval_config.slicing_specs:
    if spec.feature_values or len(spec.feature_keys) > 1 or spec.slice_keys_sql:
      raise NotImplementedError(f'slicing spec {spec} is not computed here')
    if not spec.feature_keys:
      result.append(((), np.arange(rows)))
      continue
    (name,) = spec.feature_keys
    found = features.get(name)
    if found is None:
      raise ValueError(f'no values of the slice feature {name!r}')
    if not len(found.values):
      continue
    distinct, inverse = np.unique(found.values, return_inverse=True)
    order = np.argsort(inverse, kind='stable')
    bounds = np.cumsum(np.bincount(inverse, minlength=len(distinct)))[:-1]
    single = [slicer_lib.SingleSliceSpec(spec=spec)]
    for value, members in zip(distinct, np.split(found.rows[order], bounds), strict=True):
      (key,) = slicer_lib.get_slices_for_features_dicts([{name: np.array([value])}], None, single)
      result.append((key, np.unique(members)))
  return result


def compute(
  eval_config: config_pb2.EvalConfig,
  models: dict[str, ModelRows],
  features: dict[str, FeatureValues],
) -> list[tuple[SliceKey, dict]]:
  """Per slice, TFMA's metrics and plots (MetricKey and PlotKey -> value) of
  `models` (by model name: '' for one model, else the names of the
  config's model specs)."""
  tfma_tuning.install()
  computations = tfma_eval._filter_and_separate_computations(
    metric_specs.to_computations(eval_config.metrics_specs, eval_config=eval_config)
  )
  if computations.cross_slice_computations or computations.ci_derived_computations:
    raise NotImplementedError('cross-slice and interval metrics are not computed here')
  for name, model in models.items():
    bad = int(np.sum(~np.isfinite(np.asarray(model.predictions, dtype=np.float64))))
    if bad:
      raise ValueError(
        f'the {name or "candidate"} model predicts NaN or infinity on {bad} of '
        f'{len(model.predictions)} eval rows'
      )
  baseline = model_util.get_baseline_model_spec(eval_config)
  rows = len(next(iter(models.values())).labels)
  result = []
  for slice_key, members in slices(eval_config, features, rows):
    subsets = {name: m.take(members) for name, m in models.items()}
    values = {}
    for computation in computations.non_derived_computations:
      values.update(_accumulate(computation, subsets[computation.keys[0].model_name]))
    for derived in computations.derived_computations:
      values.update(derived.result(values))
    if baseline:
      values.update(_diffs(values, baseline.name))
    result.append(
      (slice_key, {k: v for k, v in values.items() if not tfma_eval._is_private_metrics(k)})
    )
  return result


def _diffs(values: dict, baseline_name: str) -> dict:
  """Candidate minus baseline of every metric both have, as TFMA adds them."""
  diffs = {}
  for key, value in values.items():
    if tfma_eval._is_private_metrics(key) or key.is_diff or key.model_name == baseline_name:
      continue
    base = key.make_baseline_key(baseline_name)
    if base in values and tfma_eval._is_metric_diffable(value):
      diffs[key.make_diff_key()] = value - values[base]
  return diffs


def write(
  output_dir: str,
  eval_config: config_pb2.EvalConfig,
  sliced: list[tuple[SliceKey, dict]],
  data_location: str,
  model_locations: dict[str, str],
):
  """TFMA's output files for `sliced` (metrics, plots, empty attributions,
  the validation result and the config), as `tfma.ExtractEvaluateAndWriteResults`
  writes them; returns the validation result."""
  tf.io.gfile.makedirs(output_dir)
  metrics = [tfma_eval._filter_by_key_type(s, metric_types.MetricKey) for s in sliced]
  plots = [tfma_eval._filter_by_key_type(s, metric_types.PlotKey) for s in sliced]
  combine = tfma_writer.CombineValidations(eval_config, rubber_stamp=False)
  validation = combine.create_accumulator()
  for per_slice in metrics:
    validation = combine.add_input(
      validation, metrics_validator.validate_metrics(per_slice, eval_config)
    )
  validation = combine.extract_output(validation)
  shard = '-00000-of-00001.tfrecord'
  files = {
    tfma_constants.METRICS_KEY + shard: [
      tfma_writer.convert_slice_metrics_to_proto(m, add_metrics_callbacks=[]) for m in metrics
    ],
    tfma_constants.PLOTS_KEY + shard: [
      tfma_writer.convert_slice_plots_to_proto(p, add_metrics_callbacks=[]) for p in plots
    ],
    tfma_constants.ATTRIBUTIONS_KEY + shard: [],
    tfma_constants.VALIDATIONS_KEY + '.tfrecord': [validation],
  }
  for name, protos in files.items():
    with tf.io.TFRecordWriter(os.path.join(output_dir, name)) as records:
      for proto in protos:
        records.write(proto.SerializeToString())
  with tf.io.gfile.GFile(
    os.path.join(output_dir, eval_config_writer.EVAL_CONFIG_FILE + '.json'), 'w'
  ) as f:
    f.write(
      eval_config_writer._serialize_eval_run(
        eval_config, data_location, 'tfrecords', model_locations
      )
    )
  return validation
