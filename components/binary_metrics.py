"""Our TFMA metrics for binary models, where TFMA 0.46's own fall short.

`HistogramBinaryMetrics`: precision, recall and accuracy at 0.5,
calibration and the example count, derived from the calibration histogram
TFMA's AUC already builds. TFMA's own `Precision`, `Recall`,
`BinaryAccuracy`, `Calibration` and `ExampleCount` each accumulate a
statistic of their own (its `ConfusionMatrixMetric` does not expose
`use_histogram`); in TFMA's Beam evaluation each was a per-example
combiner, 10 s of 41 on 50,600 eval rows. The Evaluator now accumulates
without TFMA's combiners (`components.batch_metrics`), and these stay so
the reported values stay the same. They come once per
slice from the 10,000-bucket histogram `AUC` and `CalibrationPlot` share,
by TFMA's own derivation (`binary_confusion_matrices(use_histogram=True)`)
and formulas. The one difference: a prediction in [0.5, 0.5001), the
bucket holding the threshold, counts as negative, as it does in TFMA's AUC.

`BinaryLogLoss`: TFMA's `BinaryCrossEntropy` merges a list of accumulators
into the first one while iterating over that list again, so the first
accumulator counts twice: the log loss, a gate metric, then depends on how
Beam happened to bundle the data. Ours merges correctly, works on Python
floats rather than one-element arrays, and clips predictions to
[1e-7, 1 - 1e-7] as Keras's log loss does, so a prediction of exactly 0 or
1 gives a finite loss.
"""

import math

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import (
  binary_confusion_matrices,
  calibration_histogram,
  confusion_matrix_metrics,
  metric_types,
  metric_util,
)

THRESHOLD = 0.5
# TFMA's metric name -> the TFMA metric whose formula (tp, tn, fp, fn) gives it.
_AT_THRESHOLD = {
  'precision': confusion_matrix_metrics.Precision(),
  'recall': confusion_matrix_metrics.Recall(),
  'binary_accuracy': confusion_matrix_metrics.BinaryAccuracy(),
}
CALIBRATION = 'calibration'
# The histogram's weight per example is 1 when unweighted, as in ExampleCount.
EXAMPLE_COUNT = 'example_count'
NAMES = (*_AT_THRESHOLD, CALIBRATION, EXAMPLE_COUNT)


class HistogramBinaryMetrics(metric_types.Metric):
  """Precision, recall and accuracy at 0.5, calibration and the example count,
  under TFMA's names."""

  def __init__(self, name: str = 'histogram_binary_metrics'):
    super().__init__(metric_util.merge_per_key_computations(_computations), name=name)


metric_types.register_metric(HistogramBinaryMetrics)


def _computations(
  name: str = '',
  eval_config=None,
  model_name: str = '',
  output_name: str = '',
  sub_key=None,
  aggregation_type=None,
  class_weights=None,
  example_weighted: bool = False,
) -> metric_types.MetricComputations:
  del name  # the keys carry TFMA's own metric names
  shared = {
    'eval_config': eval_config,
    'model_name': model_name,
    'output_name': output_name,
    'sub_key': sub_key,
    'aggregation_type': aggregation_type,
    'class_weights': class_weights,
    'example_weighted': example_weighted,
  }
  # The same arguments as the AUC's, so TFMA computes this histogram once.
  histogram = calibration_histogram.calibration_histogram(num_buckets=None, **shared)
  matrices = binary_confusion_matrices.binary_confusion_matrices(
    thresholds=[THRESHOLD], use_histogram=True, **shared
  )
  histogram_key = histogram[-1].keys[-1]
  matrices_key = matrices[-1].keys[-1]
  keys = {
    name: metric_types.MetricKey(
      name=name,
      model_name=model_name,
      output_name=output_name,
      sub_key=sub_key,
      example_weighted=example_weighted,
      aggregation_type=aggregation_type if name in _AT_THRESHOLD else None,
    )
    for name in NAMES
  }

  def result(metrics):
    m = metrics[matrices_key]
    values = {
      keys[name]: metric.result(m.tp[0], m.tn[0], m.fp[0], m.fn[0])
      for name, metric in _AT_THRESHOLD.items()
    }
    buckets = metrics[histogram_key]
    labels = sum(b.weighted_labels for b in buckets)
    predictions = sum(b.weighted_predictions for b in buckets)
    values[keys[CALIBRATION]] = float('nan') if np.isclose(labels, 0.0) else predictions / labels
    values[keys[EXAMPLE_COUNT]] = sum(b.weighted_examples for b in buckets)
    return values

  derived = metric_types.DerivedMetricComputation(keys=list(keys.values()), result=result)
  return [*histogram, *matrices, derived]


LOG_LOSS = 'binary_crossentropy'  # TFMA's name, so thresholds and reports stay the same
_EPSILON = 1e-7  # Keras's


class BinaryLogLoss(metric_types.Metric):
  """Mean binary cross entropy of the predicted probability, under TFMA's name."""

  def __init__(self, name: str = LOG_LOSS):
    super().__init__(metric_util.merge_per_key_computations(_log_loss), name=name)


metric_types.register_metric(BinaryLogLoss)


def _log_loss(
  name: str = LOG_LOSS,
  eval_config=None,
  model_name: str = '',
  output_name: str = '',
  sub_key=None,
  aggregation_type=None,
  class_weights=None,
  example_weighted: bool = False,
) -> metric_types.MetricComputations:
  key = metric_types.MetricKey(
    name=name,
    model_name=model_name,
    output_name=output_name,
    sub_key=sub_key,
    example_weighted=example_weighted,
  )
  combiner = LogLossCombiner(key, eval_config, aggregation_type, class_weights, example_weighted)
  return [metric_types.MetricComputation(keys=[key], preprocessors=None, combiner=combiner)]


class LogLossCombiner(beam.CombineFn):
  """Sums of weighted losses and weights: [loss, weight]."""

  def __init__(self, key, eval_config, aggregation_type, class_weights, example_weighted):
    self._key = key
    self._eval_config = eval_config
    self._aggregation_type = aggregation_type
    self._class_weights = class_weights
    self._example_weighted = example_weighted

  def create_accumulator(self) -> list[float]:
    return [0.0, 0.0]

  def add_input(self, accumulator: list[float], element) -> list[float]:
    for label, prediction, weight in metric_util.to_label_prediction_example_weight(
      element,
      eval_config=self._eval_config,
      model_name=self._key.model_name,
      output_name=self._key.output_name,
      sub_key=self._key.sub_key,
      aggregation_type=self._aggregation_type,
      class_weights=self._class_weights,
      example_weighted=self._example_weighted,
      flatten=True,
    ):
      p = min(max(float(prediction), _EPSILON), 1.0 - _EPSILON)
      y, w = float(label), float(weight)
      accumulator[0] -= w * (y * math.log(p) + (1.0 - y) * math.log(1.0 - p))
      accumulator[1] += w
    return accumulator

  def merge_accumulators(self, accumulators) -> list[float]:
    merged = [0.0, 0.0]
    for loss, weight in accumulators:
      merged[0] += loss
      merged[1] += weight
    return merged

  def extract_output(self, accumulator: list[float]) -> dict:
    loss, weight = accumulator
    return {self._key: loss / weight if weight > 0 else float('nan')}
