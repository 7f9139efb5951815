"""preprocessing_fn run through tft_beam on a tiny dataset (see conftest.transformed)."""

import numpy as np

from trainer_module.features import (
  FEATURES,
  LABEL_KEY,
  OOV_BUCKETS,
  Kind,
  num_ids,
  transformed_name,
)


def test_every_feature_and_the_label_are_produced(transformed):
  _, _, out, rows = transformed
  assert len(out) == len(rows)
  expected = {transformed_name(k) for k in FEATURES} | {LABEL_KEY}
  assert set(out[0]) == expected


def test_label_is_tip_over_20_percent_of_fare(transformed):
  _, _, out, rows = transformed
  f32 = np.float32
  # In float32, as the graph computes it (tips exactly 20% can round either way in float64).
  expected = sorted(int(f32(r['tips'] or 0) > f32(0.2) * f32(r['fare'])) for r in rows)
  assert sorted(int(o[LABEL_KEY]) for o in out) == expected
  assert 0 < sum(expected) < len(expected)


def test_numeric_features_are_standardised(transformed):
  _, _, out, _ = transformed
  for key, feature in FEATURES.items():
    if feature.kind is Kind.NUMERIC:
      values = np.array([o[transformed_name(key)] for o in out])
      assert abs(values.mean()) < 0.1, key
      assert 0.8 < values.std() < 1.2, key


def test_categorical_ids_are_in_range(transformed):
  _, _, out, _ = transformed
  for key, feature in FEATURES.items():
    if feature.kind is Kind.NUMERIC:
      continue
    ids = np.array([o[transformed_name(key)] for o in out])
    assert ids.min() >= 0 and ids.max() < num_ids(feature), key


def test_missing_values_are_filled(transformed):
  _, _, out, _rows = transformed
  row = max(out, key=lambda o: o[transformed_name('trip_miles')])  # the hand-made row
  assert row[transformed_name('pickup_latitude')] == FEATURES['pickup_latitude'].size
  assert row[transformed_name('dropoff_community_area')] == FEATURES['dropoff_community_area'].size
  assert row[transformed_name('trip_start_hour')] == 7
  # An empty company is one vocabulary entry like any other, never an error.
  assert 0 <= row[transformed_name('company')] < FEATURES['company'].size + OOV_BUCKETS
