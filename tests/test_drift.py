"""The drift gate's thresholds, measurements (TFDV's comparators) and acceptance records."""

import numpy as np
import pandas as pd
import pytest
from tensorflow_metadata.proto.v0 import schema_pb2

from components import drift
from components.contract import DriftPolicy


def _schema() -> schema_pb2.Schema:
  schema = schema_pb2.Schema()
  for name, kind in (
    ('city', schema_pb2.BYTES),
    ('miles', schema_pb2.FLOAT),
    ('hour', schema_pb2.INT),
    ('zone', schema_pb2.INT),
  ):
    schema.feature.add(name=name, type=kind)
  schema.feature[3].int_domain.is_categorical = True
  return schema


def _comparators(schema):
  """Feature -> (comparator kind, threshold), thresholds rounded from float32."""
  result = {}
  for f in schema.feature:
    kinds = [
      k for k in ('infinity_norm', 'jensen_shannon_divergence') if f.drift_comparator.HasField(k)
    ]
    kind = kinds[0] if kinds else None
    result[f.name] = (kind, round(getattr(f.drift_comparator, kind).threshold, 6) if kind else 0.0)
  return result


def test_thresholds_come_from_config_then_schema_then_the_kind_default():
  schema = _schema()
  schema.feature[
    2
  ].drift_comparator.jensen_shannon_divergence.threshold = 0.05  # hour, in the schema
  policy = DriftPolicy(
    categorical_threshold=0.25, numeric_threshold=0.3, thresholds={'miles': 0.5}, ignore=('zone',)
  )
  assert _comparators(drift.with_comparators(schema, policy)) == {
    'city': ('infinity_norm', 0.25),
    'miles': ('jensen_shannon_divergence', 0.5),
    'hour': ('jensen_shannon_divergence', 0.05),
    'zone': (None, 0.0),
  }
  categorical = drift.with_comparators(schema, DriftPolicy())
  assert _comparators(categorical)['zone'][0] == 'infinity_norm'  # categorical ints
  assert not _schema().feature[0].HasField('drift_comparator')  # the input is not changed


def _stats(frame):
  import tensorflow_data_validation as tfdv

  return tfdv.generate_statistics_from_dataframe(frame)


def _frame(rng, n, miles_scale=1.0, city_p=(0.5, 0.3, 0.2)):
  return pd.DataFrame(
    {
      'city': rng.choice(['a', 'b', 'c'], size=n, p=city_p),
      'miles': rng.exponential(3.0, size=n) * miles_scale,
      'hour': rng.integers(0, 24, size=n),
      'zone': rng.integers(0, 5, size=n),
    }
  )


def test_same_distribution_passes_and_a_shift_is_measured_past_its_threshold():
  rng = np.random.default_rng(0)
  schema, policy = _schema(), DriftPolicy()
  previous = _stats(_frame(rng, 2000))
  same = drift.measure(_stats(_frame(rng, 2000)), previous, schema, policy)
  assert {m.feature for m in same} == {'city', 'miles', 'hour', 'zone'}
  assert not [m for m in same if m.drifted], same
  shifted = drift.measure(
    _stats(_frame(rng, 2000, miles_scale=10, city_p=(0.1, 0.1, 0.8))), previous, schema, policy
  )
  drifted = {m.feature: m for m in shifted if m.drifted}
  assert set(drifted) == {'city', 'miles'}
  assert drifted['city'].measure == 'L-infinity distance'
  assert drifted['city'].distance == pytest.approx(0.6, abs=0.05)  # 'c': 0.2 -> 0.8
  assert drifted['miles'].measure == 'Jensen-Shannon divergence'
  assert shifted[0].drifted  # largest distance first
  text = drift.failure_text([m for m in shifted if m.drifted], 7)
  assert text.startswith('data drift: span 7 differs from the span before it in ')
  assert 'city: L-infinity distance 0.' in text and '> threshold 0.25' in text
  assert '--accept-drift' in text


def test_an_acceptance_is_recorded_and_found_by_its_key(tmp_path):
  measured = [drift.Measurement('miles', 'Jensen-Shannon divergence', 0.5, 0.3)]
  assert drift.accepted(str(tmp_path), 'stats-uri-1') is None
  drift.accept(str(tmp_path / 'records'), 'stats-uri-1', 3, measured)
  record = drift.accepted(str(tmp_path / 'records'), 'stats-uri-1')
  assert record['newest_span'] == 3 and record['drifted'][0]['feature'] == 'miles'
  assert drift.accepted(str(tmp_path / 'records'), 'stats-uri-2') is None
  assert drift.accepted('', 'stats-uri-1') is None


def test_one_outlier_does_not_make_a_heavy_tail_drift():
  rng = np.random.default_rng(1)
  a, b = _frame(rng, 2000), _frame(rng, 2000)
  b.loc[0, 'miles'] = 10_000.0  # sets the equal-width histogram's range on its own
  current, previous = _stats(b), _stats(a)
  (miles,) = [
    m for m in drift.measure(current, previous, _schema(), DriftPolicy()) if m.feature == 'miles'
  ]
  assert miles.distance < 0.2 and not miles.drifted
  # What TFDV's comparator measures on the equal-width histograms it reads by default.
  import tensorflow_data_validation as tfdv

  raw = tfdv.validate_statistics(
    current, drift.with_comparators(_schema(), DriftPolicy()), previous_statistics=previous
  )
  (info,) = [i for i in raw.drift_skew_info if list(i.path.step) == ['miles']]
  assert info.drift_measurements[0].value > 0.5
