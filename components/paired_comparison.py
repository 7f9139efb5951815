"""The gate's comparison: the candidate's metric minus the serving model's on
the same eval rows, with its 95% interval, as TFMA's JACKKNIFE option
computes it (delete-a-group jackknife over 20 random groups of rows, each
sample's difference paired on the same rows, Student's t).

Ours, not a TFMA run with confidence intervals: that run (20 partition
branches, every extract pickled between Beam stages) took 55 s on the taxi
data's 5,046 eval rows, three times the rest of the evaluation, in every
run that has a model serving. Here the samples are sums over groups of the
predictions the Evaluator already made (`components.eval_model`). The
metrics are TFMA's definitions: the AUC from its 10,000-bucket calibration
histogram, rebinned and summed by its own functions; the log loss of
`binary_metrics.BinaryLogLoss`; Keras's sparse categorical accuracy and
cross entropy, RMSE and MAE.
"""

import dataclasses
import math
from collections.abc import Callable

import numpy as np
from scipy import stats as scipy_stats

GROUPS = 20  # TFMA's number of jackknife groups
_SEED = 20  # the groups are the same in every run over the same rows
_EPSILON = 1e-7  # Keras's clipping of probabilities
_AUC_BUCKETS = 10_000  # TFMA's default histogram and threshold count


@dataclasses.dataclass(frozen=True)
class Comparison:
  diff: float  # candidate minus serving model, over every eval row
  low: float
  high: float
  candidate: float
  baseline: float
  rows: int


@dataclasses.dataclass(frozen=True)
class _Metric:
  """A metric as statistics summed per group of rows, and its value from sums."""

  group_sums: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # -> [GROUPS, ...]
  value: Callable[[np.ndarray], float]  # sums over rows -> the metric


def _ratio(sums: np.ndarray) -> float:
  return float(sums[0] / sums[1]) if sums[1] > 0 else float('nan')


def column(labels: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Labels and single-output predictions as float64 vectors."""
  return labels.reshape(-1).astype(np.float64), predictions.reshape(-1).astype(np.float64)


def _per_row(row_stats):
  """Group sums of [value, 1] per row, from `row_stats(labels, predictions)` -> values."""

  def group_sums(labels, predictions, groups):
    values = row_stats(labels, predictions)
    return np.stack(
      [np.bincount(groups, values, GROUPS), np.bincount(groups, minlength=GROUPS)], axis=1
    ).astype(np.float64)

  return group_sums


def log_loss(labels, predictions):
  """Per row, the binary cross entropy of the clipped probability."""
  y, p = column(labels, predictions)
  p = np.clip(p, _EPSILON, 1.0 - _EPSILON)
  return -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))


def class_probabilities(labels, predictions):
  """Class ids [rows] and class probabilities [rows, classes]."""
  classes = labels.reshape(-1).astype(np.int64)
  probabilities = predictions.reshape(len(classes), -1).astype(np.float64)
  return classes, probabilities


def accuracy(labels, predictions):
  """Per row, 1 when the most probable class is the label."""
  classes, probabilities = class_probabilities(labels, predictions)
  return (np.argmax(probabilities, axis=1) == classes).astype(np.float64)


def cross_entropy(labels, predictions):
  """Per row, the categorical cross entropy of the label's (normalised, clipped) probability."""
  classes, probabilities = class_probabilities(labels, predictions)
  probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
  picked = np.clip(probabilities[np.arange(len(classes)), classes], _EPSILON, 1.0 - _EPSILON)
  return -np.log(picked)


def squared_error(labels, predictions):
  """Per row, the squared error."""
  y, p = column(labels, predictions)
  return (y - p) ** 2


def absolute_error(labels, predictions):
  """Per row, the absolute error."""
  y, p = column(labels, predictions)
  return np.abs(y - p)


_HISTOGRAM_SIZE = _AUC_BUCKETS + 2  # TFMA's buckets: 0 below, N + 1 above
# TFMA's thresholds for the AUC, and those its histogram path rebins at
# (its intervals are (start, end]).
_THRESHOLDS = (
  [-_EPSILON] + [(i + 1) / (_AUC_BUCKETS - 1) for i in range(_AUC_BUCKETS - 2)] + [1.0 + _EPSILON]
)
_REBIN_THRESHOLDS = [t + _EPSILON if t != 0 else t for t in _THRESHOLDS]


def _auc_group_sums(labels, predictions, groups):
  """Per group, the weighted labels and examples in each of TFMA's calibration
  histogram buckets: [GROUPS, bucket, (labels, examples)]."""
  y, p = column(labels, predictions)
  bucket = np.clip(np.floor(p * _AUC_BUCKETS + 1), 0, _AUC_BUCKETS + 1).astype(np.int64)
  cell = groups * _HISTOGRAM_SIZE + bucket
  size = GROUPS * _HISTOGRAM_SIZE
  sums = np.stack([np.bincount(cell, y, size), np.bincount(cell, minlength=size)], axis=1)
  return sums.astype(np.float64).reshape(GROUPS, _HISTOGRAM_SIZE, 2)


def _auc_value(sums: np.ndarray) -> float:
  """TFMA's AUC (ROC, interpolated trapezoids) from histogram sums [bucket, (labels, examples)]."""
  from tensorflow_model_analysis.metrics import binary_confusion_matrices as bcm
  from tensorflow_model_analysis.metrics import calibration_histogram as ch

  histogram = [
    ch.Bucket(int(i), float(sums[i, 0]), 0.0, float(sums[i, 1])) for i in np.flatnonzero(sums[:, 1])
  ]
  rebinned = ch.rebin(_REBIN_THRESHOLDS, histogram)
  m = bcm._histogram_to_binary_confusion_matrices(_THRESHOLDS, rebinned)
  tp, tn, fp, fn = (np.asarray(v, dtype=np.float64) for v in (m.tp, m.tn, m.fp, m.fn))
  with np.errstate(divide='ignore', invalid='ignore'):
    recall, fp_rate = tp / (tp + fn), fp / (fp + tn)
  return float(np.nansum((fp_rate[:-1] - fp_rate[1:]) * (recall[:-1] + recall[1:]) / 2.0))


# TFMA's metric name -> its definition here. Every metric that can gate.
METRICS = {
  'auc': _Metric(_auc_group_sums, _auc_value),
  'binary_crossentropy': _Metric(_per_row(log_loss), _ratio),
  'sparse_categorical_accuracy': _Metric(_per_row(accuracy), _ratio),
  'sparse_categorical_crossentropy': _Metric(_per_row(cross_entropy), _ratio),
  'root_mean_squared_error': _Metric(_per_row(squared_error), lambda s: math.sqrt(_ratio(s))),
  'mean_absolute_error': _Metric(_per_row(absolute_error), _ratio),
}


def compare(metric: str, labels: np.ndarray, candidate: np.ndarray, baseline: np.ndarray):
  """The candidate's `metric` minus the baseline's on the same rows, with the
  95% interval of TFMA's delete-a-group jackknife (centred, as TFMA's, on the
  mean of the samples)."""
  definition = METRICS[metric]
  n = len(labels)
  groups = np.random.RandomState(_SEED).randint(GROUPS, size=n)
  per_model = []
  for predictions in (candidate, baseline):
    sums = definition.group_sums(labels, predictions, groups)
    total = sums.sum(axis=0)
    point = definition.value(total)
    samples = np.array([definition.value(total - sums[g]) for g in range(GROUPS)])
    per_model.append((point, samples))
  (c_point, c_samples), (b_point, b_samples) = per_model
  point, samples = c_point - b_point, c_samples - b_samples
  pseudo = point * GROUPS - samples * (GROUPS - 1)
  std_error = float(np.std(pseudo, ddof=1)) / math.sqrt(GROUPS)
  mean = float(np.mean(samples))
  half = std_error * float(scipy_stats.t.ppf(0.975, GROUPS - 1))
  return Comparison(point, mean - half, mean + half, c_point, b_point, n)
