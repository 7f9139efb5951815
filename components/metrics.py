"""The evaluation metrics of each task, and which of them can gate blessing.

Plain data, so the config can check a gate without importing TFMA.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Metric:
  class_name: str  # TFMA's metric class, or a tf.keras metric TFMA wraps
  tfma_name: str  # the name TFMA stores its values under
  # True: higher is better; False: lower is better; None: neither (a count, a ratio).
  higher_is_better: bool | None = None
  gate: bool = False  # may gate blessing (`evaluator.metric`)
  module: str = ''  # where `class_name` is defined, when not in TFMA


# Ours where TFMA's own fall short (components.binary_metrics says how).
_OURS = 'components.binary_metrics'


# Summary name -> metric, per task type. The first gateable one is the default gate.
TASK_METRICS = {
  'binary': {
    'auc': Metric('AUC', 'auc', True, gate=True),
    'log_loss': Metric('BinaryLogLoss', 'binary_crossentropy', False, gate=True, module=_OURS),
    # Five metrics of one class: one computation over the AUC's histogram.
    'accuracy': Metric('HistogramBinaryMetrics', 'binary_accuracy', True, module=_OURS),
    'precision': Metric('HistogramBinaryMetrics', 'precision', True, module=_OURS),
    'recall': Metric('HistogramBinaryMetrics', 'recall', True, module=_OURS),
    'calibration': Metric('HistogramBinaryMetrics', 'calibration', module=_OURS),
    'example_count': Metric('HistogramBinaryMetrics', 'example_count', module=_OURS),
  },
  'multiclass': {
    # Real multi-class accuracy and log loss on the predicted distribution,
    # not TFMA's one-vs-rest flattening.
    'accuracy': Metric('SparseCategoricalAccuracy', 'sparse_categorical_accuracy', True, gate=True),
    'log_loss': Metric(
      'SparseCategoricalCrossentropy', 'sparse_categorical_crossentropy', False, gate=True
    ),
    'example_count': Metric('ExampleCount', 'example_count'),
  },
  'regression': {
    'rmse': Metric('RootMeanSquaredError', 'root_mean_squared_error', False, gate=True),
    'mae': Metric('MeanAbsoluteError', 'mean_absolute_error', False, gate=True),
    'mse': Metric('MeanSquaredError', 'mean_squared_error', False),
    'mean_label': Metric('MeanLabel', 'mean_label'),
    'mean_prediction': Metric('MeanPrediction', 'mean_prediction'),
    'example_count': Metric('ExampleCount', 'example_count'),
  },
}
# Multi-class: per-class one-vs-rest metrics, reported under `per_class`.
PER_CLASS_METRICS = {
  'precision': Metric('Precision', 'precision', True),
  'recall': Metric('Recall', 'recall', True),
}


def gate_metrics(task_type: str) -> list[str]:
  """The summary names of the metrics that may gate blessing for `task_type`."""
  return [name for name, metric in TASK_METRICS[task_type].items() if metric.gate]


def summary_name(task_type: str, tfma_name: str) -> str | None:
  """Our name for a TFMA metric name of `task_type`, or None if we do not report it."""
  for name, metric in TASK_METRICS[task_type].items():
    if metric.tfma_name == tfma_name:
      return name
  return None
