"""TFMA's histogram rebinning and confusion matrices on arrays: TFMA's floats."""

import numpy as np
import pytest
from tensorflow_model_analysis.metrics import binary_confusion_matrices as bcm
from tensorflow_model_analysis.metrics import calibration_histogram

from components import tfma_tuning

REBIN = getattr(calibration_histogram.rebin, '__wrapped__', calibration_histogram.rebin)
MATRICES = getattr(
  bcm._histogram_to_binary_confusion_matrices,
  '__wrapped__',
  bcm._histogram_to_binary_confusion_matrices,
)
EPSILON = bcm._EPSILON


def _histogram(rows: int, seed: int, num_buckets=10_000):
  """As TFMA's calibration histogram combiner bins weighted predictions."""
  rng = np.random.default_rng(seed)
  predictions = rng.beta(0.5, 2.0, rows)
  labels = (rng.random(rows) < predictions).astype(np.float64)
  weights = rng.choice([0.5, 1.0, 3.0], rows)
  ids = np.clip(np.floor(predictions * num_buckets + 1), 0, num_buckets + 1).astype(np.int64)
  buckets = [
    calibration_histogram.Bucket(
      int(i),
      float(np.sum(labels[ids == i] * weights[ids == i])),
      float(np.sum(predictions[ids == i] * weights[ids == i])),
      float(np.sum(weights[ids == i])),
    )
    for i in np.unique(ids)
  ]
  # Predictions below 0 and above 1 land in the end buckets.
  return [
    calibration_histogram.Bucket(0, 0.0, -1.0, 2.0),
    *buckets,
    calibration_histogram.Bucket(num_buckets + 1, 1.0, 1.5, 1.0),
  ]


THRESHOLDS = {
  'auc': [i / 9_999 for i in range(10_000)],
  'plot': [i / 1_000 for i in range(1_001)],
  'precision': [0.5],
  'beyond_one': [0.0, 0.5, 1.0, 1.5],
  'negative': [-1.0, 0.25, 0.75],
  'all_above_one': [2.0],
  'repeated': [0.3, 0.3, 0.6],
}
HISTOGRAMS = {
  'rows': _histogram(5_000, 0),
  'few': _histogram(3, 1),
  'one_bucket': [calibration_histogram.Bucket(5_001, 1.0, 0.5, 2.0)],
  'empty': [],
}


@pytest.mark.parametrize('histogram', HISTOGRAMS, ids=str)
@pytest.mark.parametrize('thresholds', THRESHOLDS, ids=str)
def test_rebin_and_matrices_are_tfmas_floats(thresholds, histogram):
  thresholds, histogram = THRESHOLDS[thresholds], HISTOGRAMS[histogram]
  # As TFMA's binary confusion matrices rebin (with epsilons and fence posts).
  edges = [t + EPSILON if t != 0 else t for t in thresholds]
  edges = ([-EPSILON] if thresholds[0] >= 0 else []) + edges
  edges = edges + ([1.0 + EPSILON] if thresholds[-1] < 1.0 else [])
  theirs = REBIN(edges, histogram)
  ours = tfma_tuning.rebinned(REBIN)(edges, histogram)
  assert isinstance(ours, tfma_tuning.Rebinned)
  assert list(ours) == theirs and ours == theirs and len(ours) == len(theirs)
  assert ours[-1] == theirs[-1] and ours[1:3] == theirs[1:3]
  expected = MATRICES(thresholds, theirs)
  got = tfma_tuning.matrices(MATRICES)(thresholds, ours)
  assert got == expected  # a namedtuple of lists of floats: equal floats, bit for bit


def test_the_calibration_plots_rebinning_is_tfmas():
  thresholds = [float('-inf')] + [i / 1_000 for i in range(1_001)]
  histogram = HISTOGRAMS['rows']
  assert list(tfma_tuning.rebinned(REBIN)(thresholds, histogram)) == REBIN(thresholds, histogram)


@pytest.mark.parametrize(
  'thresholds, histogram',
  [
    ([0.5, 0.2, 0.9], HISTOGRAMS['rows']),  # thresholds out of order
    ([0.1, float('nan')], HISTOGRAMS['rows']),
    ([], HISTOGRAMS['rows']),
    ([0.1, 0.5], list(reversed(HISTOGRAMS['rows']))),  # buckets out of order
  ],
)
def test_what_tfma_walks_differently_is_left_to_tfma(thresholds, histogram):
  ours = tfma_tuning.rebinned(REBIN)(thresholds, histogram)
  assert not isinstance(ours, tfma_tuning.Rebinned)
  assert ours == REBIN(thresholds, histogram)
  # And a plain list of buckets goes to TFMA's matrices.
  listed = REBIN([0.0, 0.5, 1.0], HISTOGRAMS['rows'])
  assert tfma_tuning.matrices(MATRICES)([0.5], listed) == MATRICES([0.5], listed)


def test_install_replaces_both_once():
  tfma_tuning.install()
  tfma_tuning.install()
  assert calibration_histogram.rebin.__wrapped__ is REBIN
  assert bcm._histogram_to_binary_confusion_matrices.__wrapped__ is MATRICES
