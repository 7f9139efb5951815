"""The taxi features: one mapping from raw column name to how it is encoded."""

import dataclasses
import enum


class Kind(enum.Enum):
  NUMERIC = 'numeric'  # float; missing -> mean, then log1p and z-score
  VOCAB = 'vocab'  # string or id; vocabulary index, rare values hashed to OOV
  BUCKET = 'bucket'  # float; quantile bucket, missing gets its own bucket
  CATEGORY = 'category'  # small int with a known range; missing gets its own id


@dataclasses.dataclass(frozen=True)
class Feature:
  kind: Kind
  # CATEGORY: number of valid ids (0..size-1); VOCAB: top-k vocabulary size;
  # BUCKET: number of quantile buckets. Unused for NUMERIC.
  size: int = 0


FEATURES = {
  'trip_miles': Feature(Kind.NUMERIC),
  'fare': Feature(Kind.NUMERIC),
  'trip_seconds': Feature(Kind.NUMERIC),
  'payment_type': Feature(Kind.VOCAB, size=100),
  'company': Feature(Kind.VOCAB, size=1000),
  'pickup_census_tract': Feature(Kind.VOCAB, size=1000),
  'dropoff_census_tract': Feature(Kind.VOCAB, size=1000),
  'pickup_latitude': Feature(Kind.BUCKET, size=10),
  'pickup_longitude': Feature(Kind.BUCKET, size=10),
  'dropoff_latitude': Feature(Kind.BUCKET, size=10),
  'dropoff_longitude': Feature(Kind.BUCKET, size=10),
  'trip_start_hour': Feature(Kind.CATEGORY, size=24),
  'trip_start_day': Feature(Kind.CATEGORY, size=8),
  'trip_start_month': Feature(Kind.CATEGORY, size=13),
  'pickup_community_area': Feature(Kind.CATEGORY, size=78),
  'dropoff_community_area': Feature(Kind.CATEGORY, size=78),
}

# Out-of-vocabulary hash buckets for VOCAB features.
OOV_BUCKETS = 10

# The label is computed by preprocessing_fn from the config's `task.label`
# column (the tips) and the fare: did the rider tip more than 20%?
FARE_KEY = 'fare'
LABEL_KEY = 'big_tipper'


def transformed_name(key: str) -> str:
  """Name of a feature after Transform; raw names stay free for TFMA slicing."""
  return key + '_xf'


def num_ids(feature: Feature) -> int:
  """Number of distinct integer ids the transformed categorical feature takes."""
  if feature.kind is Kind.VOCAB:
    return feature.size + OOV_BUCKETS
  if feature.kind in (Kind.BUCKET, Kind.CATEGORY):
    return feature.size + 1  # one extra id for "missing"
  raise ValueError(f'{feature.kind} is not categorical')
