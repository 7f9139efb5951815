"""Each task's TFMA config: its metrics, the gated metric, its direction and the prediction key."""

import pytest
import tensorflow_model_analysis as tfma

from components.contract import BinaryTask, MulticlassTask, RegressionTask
from components.evaluation import eval_config
from components.metrics import TASK_METRICS, gate_metrics


def _gate(config):
  (spec, *_) = config.metrics_specs
  gated = [
    (m.class_name, m.per_slice_thresholds[0].threshold)
    for m in spec.metrics
    if m.per_slice_thresholds
  ]
  assert len(gated) == 1
  return gated[0]


@pytest.mark.parametrize(
  'task, metric, class_name, higher, key',
  [
    (BinaryTask(label='y'), 'auc', 'AUC', True, 'logistic'),
    (BinaryTask(label='y'), 'log_loss', 'BinaryLogLoss', False, 'logistic'),
    (
      MulticlassTask(label='y', classes=('a', 'b', 'c')),
      'accuracy',
      'SparseCategoricalAccuracy',
      True,
      'probabilities',
    ),
    (
      MulticlassTask(label='y', num_classes=4),
      'log_loss',
      'SparseCategoricalCrossentropy',
      False,
      'probabilities',
    ),
    (RegressionTask(label='y'), 'rmse', 'RootMeanSquaredError', False, 'predictions'),
    (RegressionTask(label='y', prediction_key='price'), 'mae', 'MeanAbsoluteError', False, 'price'),
  ],
)
def test_gate_metric_direction_and_prediction_key(task, metric, class_name, higher, key):
  config = eval_config(task, metric, 0.7, 0.02, ['city'])
  gated_class, threshold = _gate(config)
  assert gated_class == class_name
  bound = threshold.value_threshold
  if higher:
    assert bound.lower_bound.value == 0.7 and not bound.HasField('upper_bound')
    assert threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    assert threshold.change_threshold.absolute.value == pytest.approx(-0.02)
  else:
    assert bound.upper_bound.value == 0.7 and not bound.HasField('lower_bound')
    assert threshold.change_threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER
    assert threshold.change_threshold.absolute.value == pytest.approx(0.02)
  assert config.model_specs[0].prediction_key == key
  assert [list(s.feature_keys) for s in config.slicing_specs] == [[], ['city']]
  reported = {m.class_name for m in config.metrics_specs[0].metrics}
  assert {m.class_name for m in TASK_METRICS[task.type].values()} <= reported


def test_binary_gets_a_calibration_plot_and_no_regression_metrics():
  reported = {
    m.class_name
    for m in eval_config(BinaryTask(label='y'), 'auc', 0.5, 0, []).metrics_specs[0].metrics
  }
  assert 'CalibrationPlot' in reported and 'MeanAbsoluteError' not in reported


def test_multiclass_gets_per_class_metrics_and_a_confusion_matrix():
  config = eval_config(MulticlassTask(label='y', classes=('a', 'b', 'c')), 'accuracy', 0.5, 0, [])
  main, per_class = config.metrics_specs
  assert 'MultiClassConfusionMatrixPlot' in {m.class_name for m in main.metrics}
  assert list(per_class.binarize.class_ids.values) == [0, 1, 2]
  assert {m.class_name for m in per_class.metrics} == {'Precision', 'Recall'}
  # No binary metric flattens the classes one-vs-rest in the main spec.
  assert not {'AUC', 'BinaryAccuracy', 'Calibration', 'HistogramBinaryMetrics'} & {
    m.class_name for m in main.metrics
  }


def test_regression_has_no_binary_metrics():
  # A calibration histogram needs labels in [0, 1]: TFMA fails on a regression label.
  reported = {
    m.class_name
    for m in eval_config(RegressionTask(label='y'), 'rmse', 10, 0, []).metrics_specs[0].metrics
  }
  assert (
    not {'AUC', 'Calibration', 'CalibrationPlot', 'BinaryAccuracy', 'HistogramBinaryMetrics'}
    & reported
  )


@pytest.mark.parametrize('task_type', ['binary', 'multiclass', 'regression'])
def test_a_metric_of_another_task_cannot_gate(task_type):
  task = {
    'binary': BinaryTask(label='y'),
    'multiclass': MulticlassTask(label='y', num_classes=3),
    'regression': RegressionTask(label='y'),
  }[task_type]
  others = {'auc', 'accuracy', 'rmse', 'mae', 'log_loss'} - set(gate_metrics(task_type))
  for metric in others:
    with pytest.raises(ValueError, match='cannot gate'):
      eval_config(task, metric, 0.5, 0, [])


@pytest.mark.parametrize('task_type', ['binary', 'multiclass', 'regression'])
def test_a_gate_metric_has_a_tfma_metric_of_its_own(task_type):
  # A threshold on a metric config applies to every metric that config computes.
  metrics = TASK_METRICS[task_type]
  for name in gate_metrics(task_type):
    gate = metrics[name]
    sharing = [
      other
      for other, m in metrics.items()
      if (m.class_name, m.module) == (gate.class_name, gate.module) and other != name
    ]
    assert not sharing, f'{name} shares its TFMA metric with {sharing}'
