"""Binary metrics derived from the calibration histogram TFMA's AUC already builds.

Why not TFMA's own `Precision`, `Recall`, `BinaryAccuracy` and `Calibration`:
each runs a per-example combiner of its own (TFMA's `ConfusionMatrixMetric`
does not expose `use_histogram`), and per-example Python is what bounds
the Evaluator on big eval sets. Measured on 50,600 eval rows (one process):
40.7 s with them, 30.4 s without. Here they are computed once per slice from
the 10,000-bucket histogram that `AUC` and `CalibrationPlot` share, by TFMA's
own derivation (`binary_confusion_matrices(use_histogram=True)`) and TFMA's
own formulas.

The one difference from TFMA's per-example versions: a prediction in
[0.5, 0.5001), the histogram bucket holding the threshold, counts as
negative, as it does in TFMA's AUC.
"""

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
NAMES = (*_AT_THRESHOLD, CALIBRATION)


class HistogramBinaryMetrics(metric_types.Metric):
  """Precision, recall and accuracy at 0.5, and calibration, under TFMA's names."""

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
    return values

  derived = metric_types.DerivedMetricComputation(keys=list(keys.values()), result=result)
  return [*histogram, *matrices, derived]
