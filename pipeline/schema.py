"""The curated schema: inferred from the data by TFDV, then reviewed rules applied.

The checked-in schema is what ExampleValidator holds every new data drop to;
`python -m pipeline schema` regenerates it after a deliberate data change.
"""

import pathlib

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2

from trainer_module.features import TIPS_KEY

# A categorical value never seen before is tolerated up to this share of rows
# (new taxi companies appear all the time); more means the data has changed.
MIN_DOMAIN_MASS = 0.99
TRAINING, SERVING = 'TRAINING', 'SERVING'


def curate(schema: schema_pb2.Schema) -> schema_pb2.Schema:
  """Applies the reviewed rules to a TFDV-inferred schema."""
  schema.default_environment[:] = [TRAINING, SERVING]
  for feature in schema.feature:
    if feature.presence.min_fraction < 1.0:
      # An optional column may be empty in a whole (small) data drop.
      feature.presence.ClearField('min_count')
      if feature.HasField('value_count'):
        # CsvExampleGen turns an empty cell into a feature with no values,
        # which TFDV's CSV statistics (used to infer) count as absent instead.
        feature.value_count.min = 0
    if feature.HasField('domain') or feature.HasField('string_domain'):
      feature.distribution_constraints.min_domain_mass = MIN_DOMAIN_MASS
    if feature.name == TIPS_KEY:
      # The label's source column: required for training, absent when serving.
      feature.not_in_environment.append(SERVING)
  return schema


def infer(data_root: pathlib.Path) -> schema_pb2.Schema:
  """Infers the curated schema from every CSV file under `data_root`."""
  if not any(p.is_file() for p in data_root.iterdir()):
    raise FileNotFoundError(f'no data files in {data_root}')
  stats = tfdv.generate_statistics_from_csv(data_location=str(data_root / '*'))
  # Sparse (VarLen) features: many columns have missing values.
  return curate(tfdv.infer_schema(stats, infer_feature_shape=False))


def write(schema: schema_pb2.Schema, path: pathlib.Path):
  path.parent.mkdir(parents=True, exist_ok=True)
  tfdv.write_schema_text(schema, str(path))
