"""Our binary TFMA metrics: equal to TFMA's own (or to the exact value where
TFMA's is wrong), overall and per slice, for less per-example work."""

import math
import random

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator as mpv
from tensorflow_model_analysis.metrics import metric_specs

from components.binary_metrics import LOG_LOSS, NAMES, BinaryLogLoss
from components.contract import BinaryTask
from components.evaluation import eval_config

OURS = BinaryLogLoss.__module__  # where TFMA finds our metric classes
STOCK = ['Precision', 'Recall', 'BinaryAccuracy', 'Calibration', 'ExampleCount']
CITIES = (b'a', b'b', b'c')


def _config(metrics, module=''):
  return tfma.EvalConfig(
    model_specs=[tfma.ModelSpec(label_key='label', prediction_key='prediction')],
    slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=['city'])],
    metrics_specs=[
      tfma.MetricsSpec(
        metrics=[tfma.MetricConfig(class_name=m, module=module) for m in metrics]
        + [tfma.MetricConfig(class_name='AUC')]
      )
    ],
  )


def _examples(path, n=2_000):
  """Writes `n` examples; returns their (city, label, prediction)."""
  rng = random.Random(7)
  rows = [(b'a', 0.0, 0.0), (b'b', 1.0, 1.0)]  # certain, and right
  for _ in range(n - len(rows)):
    # Never in the histogram bucket holding 0.5, where precision, recall and
    # accuracy may differ from TFMA's, as documented.
    prediction = rng.choice([rng.randrange(0, 4_999), rng.randrange(5_001, 10_000)]) / 10_000
    rows.append((rng.choice(CITIES), float(rng.random() < prediction), prediction))
  with tf.io.TFRecordWriter(path) as writer:
    for city, label, prediction in rows:
      example = tf.train.Example()
      example.features.feature['label'].float_list.value.append(label)
      example.features.feature['prediction'].float_list.value.append(prediction)
      example.features.feature['city'].bytes_list.value.append(city)
      writer.write(example.SerializeToString())
  return rows


def _metrics(result):
  return {
    (tuple(slice_key), name): value['doubleValue']
    for slice_key, by_output in result.slicing_metrics
    for name, value in by_output[''][''].items()
    if 'doubleValue' in value
  }


def _analyze(tmp_path, name, data, metrics, module=''):
  return _metrics(
    tfma.run_model_analysis(
      eval_config=_config(metrics, module), data_location=data, output_path=str(tmp_path / name)
    )
  )


@pytest.fixture(scope='module')
def data(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('data') / 'examples.tfrecord')
  return path, _examples(path)


@pytest.fixture(scope='module')
def ours(tmp_path_factory, data):
  """Our metrics' values, by (slice, name): one TFMA run for both tests."""
  path, _ = data
  tmp = tmp_path_factory.mktemp('ours')
  return _analyze(tmp, 'ours', path, ['HistogramBinaryMetrics', 'BinaryLogLoss'], OURS)


def test_histogram_metrics_equal_tfmas_overall_and_per_slice(tmp_path, data, ours):
  path, _ = data
  expected = _analyze(tmp_path, 'stock', path, STOCK)
  compared = [k for k in expected if k[1] in NAMES]
  assert len(compared) == len(STOCK) * (1 + len(CITIES))
  for key in compared:
    assert ours[key] == pytest.approx(expected[key], rel=1e-9), key


def _exact_log_loss(rows):
  def loss(y, p):
    p = min(max(float(np.float32(p)), 1e-7), 1 - 1e-7)  # as the tf.Example holds it
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))

  return sum(loss(y, p) for _, y, p in rows) / len(rows)


def test_log_loss_is_the_exact_mean_overall_and_per_slice(data, ours):
  _, rows = data
  assert {0.0, 1.0} <= {p for _, _, p in rows}  # where TFMA's own gives nan
  assert ours[((), LOG_LOSS)] == pytest.approx(_exact_log_loss(rows), rel=1e-9)
  for city in CITIES:
    in_city = [r for r in rows if r[0] == city]
    slice_key = (('city', city.decode()),)
    assert ours[(slice_key, LOG_LOSS)] == pytest.approx(_exact_log_loss(in_city), rel=1e-9)


def _combiner(metric):
  (computation,) = metric.computations()
  return computation.combiner


def _merged_log_loss(combiner, accumulators):
  return next(iter(combiner.extract_output(combiner.merge_accumulators(accumulators)).values()))


def test_log_loss_merges_a_list_of_accumulators_once_each():
  combiner = _combiner(BinaryLogLoss())
  assert _merged_log_loss(combiner, [[1.0, 1.0], [3.0, 1.0]]) == 2.0
  # Why ours exists: TFMA 0.46's counts the first accumulator twice. When this
  # fails, TFMA has fixed it, and BinaryCrossEntropy can come back.
  stock = _combiner(tfma.metrics.BinaryCrossEntropy())
  first, second = stock.create_accumulator(), stock.create_accumulator()
  first.total_cross_entropy, first.total_example_weights = 1.0, 1.0
  second.total_cross_entropy, second.total_example_weights = 3.0, 1.0
  assert _merged_log_loss(stock, [first, second]) == pytest.approx(5 / 3)


def _combiners(config):
  computations = metric_specs.to_computations(config.metrics_specs, config)
  combiners, *_ = mpv._filter_and_separate_computations(computations)
  return combiners


def test_histogram_metrics_add_no_combiner_to_the_aucs():
  full = eval_config(BinaryTask(label='y'), 'auc', 0.5, [])
  without = tfma.EvalConfig()
  without.CopyFrom(full)
  metrics = [m for m in full.metrics_specs[0].metrics if m.class_name != 'HistogramBinaryMetrics']
  del without.metrics_specs[0].metrics[:]
  without.metrics_specs[0].metrics.extend(metrics)
  assert len(metrics) < len(full.metrics_specs[0].metrics)
  assert len(_combiners(full)) == len(_combiners(without))
