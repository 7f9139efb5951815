"""The gate's comparison with the serving model: the difference paired on the
rows, and an interval as wide as the noise of the rows makes it (its point
values against TFMA's: tests/test_batch_metrics.py)."""

import math

import numpy as np
import pytest

from components import paired_comparison
from components.metrics import TASK_METRICS


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
