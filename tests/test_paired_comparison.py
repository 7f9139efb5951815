"""The gate's comparison with the serving model: each gate metric equal to the
value TFMA computes for the same rows, the difference paired on the rows,
and an interval as wide as the noise of the rows makes it."""

import math
import random

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma

from components import paired_comparison
from components.metrics import TASK_METRICS, gate_metrics

ROWS = 3_000
CLASSES = 3


def _rows(task: str):
  """(label, candidate prediction, baseline prediction) per row: two models of
  different quality on the same rows."""
  rng = random.Random(11)
  rows = []
  for _ in range(ROWS):
    if task == 'binary':
      truth = rng.random()
      label = float(rng.random() < truth)
      rows.append((label, _clip(truth + rng.gauss(0, 0.1)), _clip(truth + rng.gauss(0, 0.3))))
    elif task == 'multiclass':
      label = rng.randrange(CLASSES)
      rows.append((label, _distribution(rng, label, 2.0), _distribution(rng, label, 1.0)))
    else:
      label = rng.gauss(10, 3)
      rows.append((label, label + rng.gauss(0, 1), label + rng.gauss(0.5, 1.5)))
  return rows


def _clip(p):
  return min(max(p, 0.0), 1.0)


def _distribution(rng, label, skill):
  scores = [math.exp(rng.gauss(skill if c == label else 0.0, 1.0)) for c in range(CLASSES)]
  return [s / sum(scores) for s in scores]


def _write(path, task, rows):
  with tf.io.TFRecordWriter(path) as writer:
    for label, candidate, baseline in rows:
      example = tf.train.Example()
      feature = example.features.feature
      if task == 'multiclass':
        feature['label'].int64_list.value.append(label)
      else:
        feature['label'].float_list.value.append(label)
      for name, value in (('candidate', candidate), ('baseline', baseline)):
        feature[name].float_list.value.extend(value if isinstance(value, list) else [value])
      writer.write(example.SerializeToString())


def _tfma_values(tmp_path, task, rows):
  """TFMA's value of every gate metric of `task`, per model, on `rows`."""
  path = str(tmp_path / f'{task}.tfrecord')
  _write(path, task, rows)
  metrics = [TASK_METRICS[task][name] for name in gate_metrics(task)]
  config = tfma.EvalConfig(
    model_specs=[
      tfma.ModelSpec(name=name, label_key='label', prediction_key=name)
      for name in ('candidate', 'baseline')
    ],
    metrics_specs=[
      tfma.MetricsSpec(
        metrics=[tfma.MetricConfig(class_name=m.class_name, module=m.module) for m in metrics],
        model_names=['candidate', 'baseline'],
      )
    ],
  )
  output = str(tmp_path / f'{task}-tfma')
  tfma.run_model_analysis(eval_config=config, data_location=path, output_path=output)
  values = {}
  for per_slice in tfma.load_metrics(output):
    for kv in per_slice.metric_keys_and_values:
      values[(kv.key.model_name, kv.key.name)] = kv.value.double_value.value
  return values


@pytest.mark.parametrize('task', ['binary', 'multiclass', 'regression'])
def test_every_gate_metric_is_tfmas_and_the_difference_is_paired(tmp_path, task):
  rows = _rows(task)
  tfma_values = _tfma_values(tmp_path, task, rows)
  labels = np.array([r[0] for r in rows])
  candidate, baseline = (np.array([r[i] for r in rows]) for i in (1, 2))
  for name in gate_metrics(task):
    metric = TASK_METRICS[task][name].tfma_name
    result = paired_comparison.compare(metric, labels, candidate, baseline)
    assert result.candidate == pytest.approx(tfma_values[('candidate', metric)], abs=1e-6), metric
    assert result.baseline == pytest.approx(tfma_values[('baseline', metric)], abs=1e-6), metric
    assert result.diff == pytest.approx(result.candidate - result.baseline)
    assert result.low < result.diff < result.high, metric
    assert result.rows == ROWS


def test_the_interval_is_the_noise_of_the_paired_rows():
  """For a mean over rows the jackknife interval is about the t interval of the
  mean of the per-row differences; paired, it is far narrower than the two
  models' own spreads would make it."""
  rng = np.random.RandomState(3)
  labels = rng.normal(size=20_000)
  shared = rng.normal(scale=2.0, size=labels.size)  # error both models make
  candidate = labels + shared + rng.normal(scale=0.1, size=labels.size)
  baseline = labels + shared + 0.05 + rng.normal(scale=0.1, size=labels.size)
  result = paired_comparison.compare('mean_absolute_error', labels, candidate, baseline)
  per_row = np.abs(labels - candidate) - np.abs(labels - baseline)
  half = 1.96 * per_row.std(ddof=1) / math.sqrt(labels.size)
  assert (result.high - result.low) / 2 == pytest.approx(half, rel=0.5)
  assert result.low <= per_row.mean() <= result.high
  unpaired = 1.96 * math.hypot(np.abs(labels - candidate).std(), np.abs(labels - baseline).std())
  assert (result.high - result.low) / 2 < unpaired / math.sqrt(labels.size) / 3


def test_the_same_rows_give_the_same_interval():
  rng = np.random.RandomState(5)
  labels = (rng.random_sample(5_000) < 0.3).astype(float)
  candidate, baseline = rng.random_sample(5_000), rng.random_sample(5_000)
  first = paired_comparison.compare('auc', labels, candidate, baseline)
  assert first == paired_comparison.compare('auc', labels, candidate, baseline)


def test_every_gate_metric_has_a_definition():
  gated = {m.tfma_name for task in TASK_METRICS.values() for m in task.values() if m.gate}
  assert gated == set(paired_comparison.METRICS)
