"""The binary metrics derived from the AUC's histogram equal TFMA's own, for a
fraction of the per-example work."""

import random

import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator as mpv
from tensorflow_model_analysis.metrics import metric_specs

from components.contract import BinaryTask
from components.evaluation import eval_config
from components.histogram_metrics import NAMES

STOCK = ['Precision', 'Recall', 'BinaryAccuracy', 'Calibration']


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
  rng = random.Random(7)
  with tf.io.TFRecordWriter(path) as writer:
    for _ in range(n):
      # Predictions on a coarser grid than the histogram's buckets, and never
      # in the bucket holding 0.5 (where the two may differ, as documented).
      prediction = rng.choice([rng.randrange(0, 4_999), rng.randrange(5_001, 10_000)]) / 10_000
      label = float(rng.random() < prediction)
      example = tf.train.Example()
      example.features.feature['label'].float_list.value.append(label)
      example.features.feature['prediction'].float_list.value.append(prediction)
      example.features.feature['city'].bytes_list.value.append(rng.choice([b'a', b'b', b'c']))
      writer.write(example.SerializeToString())


def _metrics(result):
  return {
    (tuple(slice_key), name): value
    for slice_key, by_output in result.slicing_metrics
    for name, value in by_output[''][''].items()
  }


def test_equal_to_tfmas_per_example_metrics_overall_and_per_slice(tmp_path):
  data = str(tmp_path / 'examples.tfrecord')
  _examples(data)
  stock = tfma.run_model_analysis(
    eval_config=_config(STOCK), data_location=data, output_path=str(tmp_path / 'stock')
  )
  ours = tfma.run_model_analysis(
    eval_config=_config(['HistogramBinaryMetrics'], 'components.histogram_metrics'),
    data_location=data,
    output_path=str(tmp_path / 'ours'),
  )
  expected, got = _metrics(stock), _metrics(ours)
  compared = [k for k in expected if k[1] in NAMES]
  assert len(compared) == 4 * 4  # 4 metrics, overall and 3 cities
  for key in compared:
    assert got[key]['doubleValue'] == pytest.approx(expected[key]['doubleValue'], rel=1e-9), key


def _combiners(config):
  computations = metric_specs.to_computations(config.metrics_specs, config)
  combiners, *_ = mpv._filter_and_separate_computations(computations)
  return combiners


def test_they_add_no_combiner_to_the_aucs():
  full = eval_config(BinaryTask(label='y'), 'auc', 0.5, 0.0, [])
  without = tfma.EvalConfig()
  without.CopyFrom(full)
  metrics = [m for m in full.metrics_specs[0].metrics if m.class_name != 'HistogramBinaryMetrics']
  del without.metrics_specs[0].metrics[:]
  without.metrics_specs[0].metrics.extend(metrics)
  assert len(metrics) < len(full.metrics_specs[0].metrics)
  assert len(_combiners(full)) == len(_combiners(without))
