"""The curated schema: inferred from the data by TFDV, then reviewed rules applied.

The checked-in schema is what ExampleValidator holds every new data drop to;
`python -m pipeline schema` regenerates it after a deliberate data change.
"""

import os
import pathlib

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2

# A categorical value never seen before is tolerated up to this share of rows
# (new taxi companies appear all the time); more means the data has changed.
MIN_DOMAIN_MASS = 0.99
TRAINING, SERVING = 'TRAINING', 'SERVING'


def curate(schema: schema_pb2.Schema, label: str) -> schema_pb2.Schema:
  """Applies the reviewed rules to a TFDV-inferred schema whose label column is `label`."""
  schema.default_environment[:] = [TRAINING, SERVING]
  for feature in schema.feature:
    if feature.type == schema_pb2.FLOAT:
      # A value too large for float32 (1e39 in a CSV) arrives as infinity,
      # which training would silently turn into NaN weights.
      feature.float_domain.disallow_inf = True
      feature.float_domain.disallow_nan = True
    if feature.presence.min_fraction < 1.0:
      # An optional column may be empty in a whole (small) data drop.
      feature.presence.ClearField('min_count')
      if feature.HasField('value_count'):
        # A missing cell is a feature with no values.
        feature.value_count.min = 0
    if feature.name == label:
      # Required for training and evaluation, absent when serving; a label
      # value never seen before is an anomaly, not a rare category.
      feature.not_in_environment.append(SERVING)
    elif feature.HasField('domain') or feature.HasField('string_domain'):
      feature.distribution_constraints.min_domain_mass = MIN_DOMAIN_MASS
  return schema


def statistics(files: str, missing_values: tuple[str, ...]):
  """TFDV statistics of the CSV files matching the glob `files`, as ExampleGen reads them.

  The files go through the pipeline's own CSV ingest (not TFDV's CSV reader),
  so a missing-value token in a numeric column is missing here too and the
  types are the ones ExampleGen writes.
  """
  import tempfile

  import apache_beam as beam
  from tensorflow.io import gfile

  from components import csv_ingest

  paths = sorted(gfile.glob(files))
  if not paths:
    raise FileNotFoundError(f'no file matches {files}')
  with tempfile.TemporaryDirectory(prefix='schema-stats-') as tmp:
    with beam.Pipeline() as pipeline:
      _ = pipeline | csv_ingest.WriteSplitExamples(paths, [1], [tmp], missing=missing_values)
    return tfdv.generate_statistics_from_tfrecord(data_location=os.path.join(tmp, '*'))


def infer(stats, label: str) -> schema_pb2.Schema:
  """The curated schema for TFDV statistics `stats` of a table labelled by `label`."""
  names = {f.path.step[0] for d in stats.datasets for f in d.features}
  if label not in names:
    raise ValueError(
      f'the label column {label!r} is not in the data; columns: {", ".join(sorted(names))}'
    )
  # Sparse (VarLen) features: many columns have missing values.
  schema = tfdv.infer_schema(stats, infer_feature_shape=False)
  # ExampleGen writes a missing cell as a feature with no values, which TFDV
  # counts as present: such a column is optional.
  optional = {}
  for d in stats.datasets:
    for f in d.features:
      kind = f.WhichOneof('stats')
      common = getattr(f, kind).common_stats if kind else None
      if common and common.min_num_values == 0:
        optional[f.path.step[0]] = common.max_num_values
  for feature in schema.feature:
    if feature.name in optional:
      feature.presence.min_fraction = 0.0
      feature.value_count.min, feature.value_count.max = 0, max(1, optional[feature.name])
  return curate(schema, label)


def load(path: str) -> schema_pb2.Schema:
  return tfdv.load_schema_text(path)


def write(schema: schema_pb2.Schema, path: pathlib.Path):
  path.parent.mkdir(parents=True, exist_ok=True)
  tfdv.write_schema_text(schema, str(path))
