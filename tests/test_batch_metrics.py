"""The Evaluator's metrics over whole arrays against TFMA's own evaluation of
the same rows: every metric, plot and slice of each task's config, the
baseline model's values and the differences, the validation result; and
the gate comparison's point values against TFMA's."""

import math
import random

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from google.protobuf import text_format

from components import batch_metrics, paired_comparison
from components.contract import BinaryTask, MulticlassTask, RegressionTask
from components.eval_model import FeatureValues
from components.evaluation import eval_config
from components.metrics import TASK_METRICS, gate_metrics

ROWS = 1_000
CLASSES = 3
CITIES = [b'north', b'south', b'east', b'west \xc3\xa9']
# (task, gate metric, threshold): the binary and multi-class candidates pass
# their threshold, the regression one fails it.
CASES = [
  (BinaryTask(label='label', prediction_key='candidate'), 'auc', 0.7),
  (MulticlassTask(label='label', num_classes=CLASSES, prediction_key='candidate'), 'accuracy', 0.5),
  (RegressionTask(label='label', prediction_key='candidate'), 'rmse', 0.5),
]


def _rows(task_type: str):
  """(label, candidate, baseline, cities, hour) per row: two models of
  different quality on the same rows; a row has no, one or two cities."""
  rng = random.Random(11)
  rows = []
  for _ in range(ROWS):
    if task_type == 'binary':
      truth = rng.random()
      label = float(rng.random() < truth)
      candidate, baseline = _clip(truth + rng.gauss(0, 0.1)), _clip(truth + rng.gauss(0, 0.3))
    elif task_type == 'multiclass':
      label = rng.randrange(CLASSES)
      candidate, baseline = _distribution(rng, label, 2.0), _distribution(rng, label, 1.0)
    else:
      label = rng.gauss(10, 3)
      candidate, baseline = label + rng.gauss(0, 1), label + rng.gauss(0.5, 1.5)
    cities = rng.sample(CITIES, rng.choice([0, 1, 1, 1, 2]))
    rows.append((label, candidate, baseline, cities, rng.randrange(24)))
  return rows


def _clip(p):
  return min(max(p, 0.0), 1.0)


def _distribution(rng, label, skill):
  scores = [math.exp(rng.gauss(skill if c == label else 0.0, 1.0)) for c in range(CLASSES)]
  return [s / sum(scores) for s in scores]


def _write(path, task_type, rows):
  with tf.io.TFRecordWriter(path) as writer:
    for label, candidate, baseline, cities, hour in rows:
      example = tf.train.Example()
      feature = example.features.feature
      if task_type == 'multiclass':
        feature['label'].int64_list.value.append(label)
      else:
        feature['label'].float_list.value.append(label)
      for name, value in (('candidate', candidate), ('baseline', baseline)):
        feature[name].float_list.value.extend(value if isinstance(value, list) else [value])
      if cities:
        feature['city'].bytes_list.value.extend(cities)
      feature['hour'].int64_list.value.append(hour)
      writer.write(example.SerializeToString())


def _config(task, gate, threshold):
  """Our Evaluator's config for `task`, with a candidate and a baseline whose
  predictions TFMA reads from the examples."""
  config = eval_config(task, gate, threshold, ['city', 'hour'])
  del config.model_specs[:]
  for name in ('candidate', 'baseline'):
    config.model_specs.add(
      name=name, label_key='label', prediction_key=name, is_baseline=name == 'baseline'
    )
  return tfma.utils.update_eval_config_with_defaults(config, has_baseline=True, rubber_stamp=True)


def _ours(config, task_type, rows):
  # As the examples hold them, and as a model's eval signature gives them.
  labels = np.array(
    [r[0] for r in rows], dtype=np.int64 if task_type == 'multiclass' else np.float32
  )
  models = {
    name: batch_metrics.ModelRows(labels, np.array([r[i] for r in rows], dtype=np.float32))
    for i, name in ((1, 'candidate'), (2, 'baseline'))
  }
  city_rows = [(i, c) for i, r in enumerate(rows) for c in r[3]]
  features = {
    'city': FeatureValues(
      np.array([i for i, _ in city_rows]), np.array([c for _, c in city_rows], dtype=object)
    ),
    'hour': FeatureValues(np.arange(len(rows)), np.array([r[4] for r in rows])),
  }
  return batch_metrics.compute(config, models, features)


def _text(proto) -> str:
  return text_format.MessageToString(proto, as_one_line=True)


def _metrics(output):
  return {
    (_text(m.slice_key), _text(kv.key)): kv.value
    for m in tfma.load_metrics(output)
    for kv in m.metric_keys_and_values
  }


def _plots(output):
  return {
    (_text(p.slice_key), _text(kv.key)): kv.value
    for p in tfma.load_plots(output)
    for kv in p.plot_keys_and_values
  }


def _assert_close(ours, theirs, where):
  """Two protos equal, but for floating-point values within 1e-6 relative or
  2e-7 absolute: sums in another order, and TFMA's Keras metrics (accuracy,
  cross entropy, RMSE) in float32, where a difference of two values near 1
  is good to about 1e-7."""
  a, b = _text(ours).split(), _text(theirs).split()
  assert len(a) == len(b), where
  for x, y in zip(a, b, strict=True):
    if x != y:
      assert float(x) == pytest.approx(float(y), rel=1e-6, abs=2e-7), where


@pytest.mark.parametrize('task, gate, threshold', CASES, ids=lambda c: getattr(c, 'type', None))
def test_every_metric_plot_and_slice_is_tfmas(tmp_path, task, gate, threshold):
  rows = _rows(task.type)
  data = str(tmp_path / 'rows.tfrecord')
  _write(data, task.type, rows)
  config = _config(task, gate, threshold)
  theirs, ours = str(tmp_path / 'tfma'), str(tmp_path / 'ours')
  tfma.run_model_analysis(eval_config=config, data_location=data, output_path=theirs)
  validation = batch_metrics.write(ours, config, _ours(config, task.type, rows), data, {})

  expected, found = _metrics(theirs), _metrics(ours)
  assert set(found) == set(expected)
  # The whole set, 24 hours, 4 cities; both models and their differences.
  assert len({s for s, _ in found}) == 1 + 24 + len(CITIES)
  assert any('is_diff: true' in k for _, k in found)
  for key, value in expected.items():
    _assert_close(found[key], value, key)
  expected_plots, found_plots = _plots(theirs), _plots(ours)
  assert set(found_plots) == set(expected_plots)
  for key, value in expected_plots.items():
    _assert_close(found_plots[key], value, key)
  _assert_close(validation, tfma.load_validation_result(theirs), 'validation')
  assert validation.validation_ok == (task.type != 'regression')

  # The gate comparison's values are TFMA's too.
  labels = np.array([r[0] for r in rows])
  candidate, baseline = (np.array([r[i] for r in rows]) for i in (1, 2))
  overall = {k: v for (s, k), v in expected.items() if not s}
  for name in gate_metrics(task.type):
    metric = TASK_METRICS[task.type][name].tfma_name
    result = paired_comparison.compare(metric, labels, candidate, baseline)
    for model, value in (('candidate', result.candidate), ('baseline', result.baseline)):
      key = next(k for k in overall if f'name: "{metric}" model_name: "{model}" ' in k + ' ')
      assert value == pytest.approx(overall[key].double_value.value, abs=1e-6), (metric, model)
    assert result.low < result.diff < result.high, metric


def test_a_metric_without_a_batched_computation_is_named():
  config = tfma.EvalConfig(
    model_specs=[tfma.ModelSpec(prediction_key='p')],
    slicing_specs=[tfma.SlicingSpec()],
    metrics_specs=[
      tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name='MeanAbsolutePercentageError')])
    ],
  )
  models = {'': batch_metrics.ModelRows(np.ones(3), np.ones(3))}
  with pytest.raises(NotImplementedError, match='mean_absolute_percentage_error'):
    batch_metrics.compute(config, models, {})


def test_a_model_predicting_nan_is_refused_with_the_count():
  config = tfma.EvalConfig(
    model_specs=[tfma.ModelSpec(prediction_key='p')],
    slicing_specs=[tfma.SlicingSpec()],
    metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name='ExampleCount')])],
  )
  models = {'': batch_metrics.ModelRows(np.ones(4), np.array([0.1, np.nan, np.inf, 0.3]))}
  with pytest.raises(ValueError, match='NaN or infinity on 2 of 4 eval rows'):
    batch_metrics.compute(config, models, {})


def test_a_binary_metric_on_two_outputs_a_row_names_the_prediction():
  config = _config(CASES[0][0], 'auc', 0.5)
  del config.slicing_specs[1:]  # the whole set only
  rows = batch_metrics.ModelRows(np.ones(4), np.full((4, 2), 0.5))
  with pytest.raises(ValueError, match='2 values a row; this metric needs one'):
    batch_metrics.compute(config, {'candidate': rows, 'baseline': rows}, {})
