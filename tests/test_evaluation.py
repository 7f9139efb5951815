"""Each task's TFMA config: its metrics, the gated metric, its direction and the prediction key."""

import pytest

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
  config = eval_config(task, metric, 0.7, ['city'])
  gated_class, threshold = _gate(config)
  assert gated_class == class_name
  bound = threshold.value_threshold
  # The comparison with the serving model is ours (judge_change), not TFMA's.
  assert not threshold.HasField('change_threshold')
  if higher:
    assert bound.lower_bound.value == 0.7 and not bound.HasField('upper_bound')
  else:
    assert bound.upper_bound.value == 0.7 and not bound.HasField('lower_bound')
  assert config.model_specs[0].prediction_key == key
  assert [list(s.feature_keys) for s in config.slicing_specs] == [[], ['city']]
  reported = {m.class_name for m in config.metrics_specs[0].metrics}
  assert {m.class_name for m in TASK_METRICS[task.type].values()} <= reported


def test_binary_gets_a_calibration_plot_and_no_regression_metrics():
  reported = {
    m.class_name
    for m in eval_config(BinaryTask(label='y'), 'auc', 0.5, []).metrics_specs[0].metrics
  }
  assert 'CalibrationPlot' in reported and 'MeanAbsoluteError' not in reported


def test_multiclass_gets_per_class_metrics_and_a_confusion_matrix():
  config = eval_config(MulticlassTask(label='y', classes=('a', 'b', 'c')), 'accuracy', 0.5, [])
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
    for m in eval_config(RegressionTask(label='y'), 'rmse', 10, []).metrics_specs[0].metrics
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
      eval_config(task, metric, 0.5, [])


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


@pytest.mark.parametrize(
  'higher, diff, low, high, max_change, verdict, blocks',
  [
    (True, 0.0008, -0.004, 0.0056, 0.0, 'within noise', False),  # a noisy "win"
    (True, -0.003, -0.009, 0.002, 0.0, 'within noise', False),  # a noisy "loss"
    (True, 0.02, 0.01, 0.03, 0.0, 'better', False),
    (True, -0.02, -0.03, -0.01, 0.0, 'worse', True),
    (True, -0.02, -0.03, -0.01, 0.015, 'worse', False),  # worse, but within max_change
    (False, -0.5, -0.8, -0.2, 0.0, 'better', False),  # rmse down
    (False, 0.5, 0.2, 0.8, 0.0, 'worse', True),  # rmse up
    (False, 0.5, 0.2, 0.8, 0.3, 'worse', False),
  ],
)
def test_only_a_difference_beyond_the_noise_counts(
  higher, diff, low, high, max_change, verdict, blocks
):
  from components.contract import ChangeGate
  from components.evaluation import judge_change

  gate = ChangeGate(metric='m', higher_is_better=higher, max_change=max_change)
  change = judge_change(diff, low, high, gate)
  assert (change['verdict'], change['blocks']) == (verdict, blocks)


def test_a_person_can_replace_a_better_serving_model():
  from components.contract import ChangeGate
  from components.evaluation import judge_change

  gate = ChangeGate(metric='auc', higher_is_better=True, replace_reason='the old model leaked ids')
  change = judge_change(-0.2, -0.25, -0.15, gate)
  assert change['verdict'] == 'worse' and not change['blocks']
  assert change['replace_reason'] == 'the old model leaked ids'
