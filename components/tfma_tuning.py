"""TFMA's rebinning of a calibration histogram into confusion matrices, on arrays.

TFMA 0.46 derives AUC, precision, recall and the plots from a histogram of
10,000 prediction buckets: `calibration_histogram.rebin` walks it in Python
and makes one `Bucket` tuple per threshold (10,000 for AUC), and
`_histogram_to_binary_confusion_matrices` walks those again. Per slice and
model that took about 30 ms; over the 25 slices of the taxi Evaluator, 0.9 s
of its 1.7 s.

Here `rebin` keeps the rebinned sums as arrays (a `Bucket` is made only
when one is read) and the confusion matrices are running sums of them. The
arithmetic is TFMA's, in TFMA's order, so every value is the same float
(tests compare them). Input TFMA's walk would treat differently (thresholds
or buckets out of order, NaN thresholds, no thresholds) is left to TFMA.
"""

from collections.abc import Sequence

import numpy as np
from tensorflow_model_analysis.metrics import binary_confusion_matrices as bcm
from tensorflow_model_analysis.metrics import calibration_histogram

_MEMO_ATTRIBUTE = '_on_arrays'


class Rebinned(Sequence):
  """A rebinned histogram: bucket i's sums at index i of each array."""

  def __init__(self, labels: np.ndarray, predictions: np.ndarray, examples: np.ndarray):
    self.labels, self.predictions, self.examples = labels, predictions, examples

  def __len__(self) -> int:
    return len(self.examples)

  def __getitem__(self, index):
    if isinstance(index, slice):
      return [self[i] for i in range(*index.indices(len(self)))]
    i = range(len(self))[index]
    return calibration_histogram.Bucket(
      i, float(self.labels[i]), float(self.predictions[i]), float(self.examples[i])
    )

  def __eq__(self, other):
    return isinstance(other, Sequence) and list(self) == list(other)

  __hash__ = None


def rebinned(rebin):
  """`rebin` (TFMA's), answering on arrays where it can (module docstring)."""

  def rebin_on_arrays(
    thresholds,
    histogram,
    num_buckets: int = calibration_histogram.DEFAULT_NUM_BUCKETS,
    left: float = 0.0,
    right: float = 1.0,
  ):
    edges = np.asarray(thresholds, np.float64)
    ids = np.fromiter((b.bucket_id for b in histogram), np.int64, len(histogram))
    unsorted = (np.diff(edges) < 0).any() or (np.diff(ids) < 0).any()
    if not len(edges) or np.isnan(edges).any() or unsorted:
      return rebin(thresholds, histogram, num_buckets, left, right)
    predictions = (ids - 1) / num_buckets * (right - left) + left
    predictions[ids == 0] = -np.inf
    predictions[ids >= num_buckets + 1] = np.inf
    # TFMA's walk moves to bucket j once a prediction reaches thresholds[j].
    offsets = np.searchsorted(edges[1:], predictions, side='right')

    def sums(field):
      values = np.fromiter((getattr(b, field) for b in histogram), np.float64, len(histogram))
      return np.bincount(offsets, values, len(edges))

    return Rebinned(
      sums('weighted_labels'), sums('weighted_predictions'), sums('weighted_examples')
    )

  setattr(rebin_on_arrays, _MEMO_ATTRIBUTE, True)
  rebin_on_arrays.__wrapped__ = rebin
  return rebin_on_arrays


def matrices(histogram_to_matrices):
  """`_histogram_to_binary_confusion_matrices` (TFMA's), on a `Rebinned`."""

  def on_arrays(thresholds, histogram):
    if not isinstance(histogram, Rebinned):
      return histogram_to_matrices(thresholds, histogram)
    positives = histogram.labels
    negatives = histogram.examples - histogram.labels
    # Running sums in TFMA's order: from the top bucket down for tp and fp,
    # from 0.0 up for tn and fn.
    tp = np.cumsum(positives[::-1])[::-1]
    fp = np.cumsum(negatives[::-1])[::-1]
    fn = np.cumsum(np.concatenate([[0.0], positives[:-1]]))
    tn = np.cumsum(np.concatenate([[0.0], negatives[:-1]]))
    offset = 1 if (thresholds[0] >= 0 or len(thresholds) == 1) and len(histogram) > 1 else 0
    tp, fp, tn, fn = (a[offset : offset + len(thresholds)].tolist() for a in (tp, fp, tn, fn))
    for i, threshold in enumerate(thresholds):
      if threshold >= 1.0 + bcm._EPSILON:  # in TFMA's order: tp[0] may be zeroed first
        tp[i] = 0.0
        fp[i] = 0.0
        fn[i] = tp[0]
        tn[i] = fp[0]
    return bcm.Matrices(thresholds, tp, tn, fp, fn)

  setattr(on_arrays, _MEMO_ATTRIBUTE, True)
  on_arrays.__wrapped__ = histogram_to_matrices
  return on_arrays


def install() -> None:
  """Replaces TFMA's `rebin` and `_histogram_to_binary_confusion_matrices` by
  their array versions (once per process; their callers look them up in
  their modules)."""
  if not getattr(calibration_histogram.rebin, _MEMO_ATTRIBUTE, False):
    calibration_histogram.rebin = rebinned(calibration_histogram.rebin)
  if not getattr(bcm._histogram_to_binary_confusion_matrices, _MEMO_ATTRIBUTE, False):
    bcm._histogram_to_binary_confusion_matrices = matrices(
      bcm._histogram_to_binary_confusion_matrices
    )
