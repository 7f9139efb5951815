"""Checks run before anything else: the config against the schema, and the user's module.

A mistake here stops the run with one line before any data work (exit 2).
"""

import glob
import os

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.column_names import check_names
from components.csv_check import check_csv_files
from pipeline.config import Config, ConfigError
from pipeline.definition import usercode


def read_schema(path: str) -> schema_pb2.Schema:
  if '://' in path:
    import tensorflow as tf

    with tf.io.gfile.GFile(path) as f:
      text = f.read()
  else:
    if not os.path.isfile(path):
      raise ConfigError(
        f"config key 'schema_file': {path} does not exist "
        '(create one with `python -m pipeline init` or `python -m pipeline schema`)'
      )
    try:
      with open(path, encoding='utf-8') as f:
        text = f.read()
    except OSError as e:
      raise ConfigError(f"config key 'schema_file': {path}: {e.strerror}") from None
    except UnicodeDecodeError:
      raise ConfigError(
        f"config key 'schema_file': {path} is not a schema: not UTF-8 text"
      ) from None
  try:
    return text_format.Parse(text, schema_pb2.Schema())
  except text_format.ParseError as e:
    raise ConfigError(f"config key 'schema_file': {path} is not a schema: {e}") from None


def check_against_schema(config: Config, schema: schema_pb2.Schema) -> None:
  """Transform can take every column of the schema; the label and slice
  features are among them."""
  columns = {f.name for f in schema.feature}
  try:
    check_names(sorted(columns), f"config key 'schema_file': {config.schema_file}")
  except ValueError as e:
    raise ConfigError(str(e)) from None
  listed = ', '.join(map(repr, sorted(columns)))
  if config.task.label not in columns:
    raise ConfigError(
      f"config key 'task.label': {config.task.label!r} is not a column of "
      f'{config.schema_file} (columns: {listed})'
    )
  for feature in config.evaluator.slice_features:
    if feature not in columns:
      raise ConfigError(
        f"config key 'evaluator.slice_features': {feature!r} is not a column "
        f'of {config.schema_file} (columns: {listed})'
      )


def preflight(config: Config, data: bool = True) -> None:
  """Every check that needs no data processing; raises ConfigError, or DataError
  for the CSV files of the spans a run reads (if `data`)."""
  check_against_schema(config, read_schema(config.schema_file))
  if data and '://' not in config.data_root:
    check_data_root(config.data_root, config.spans.pattern)
  checked = frozenset()
  if data and '://' not in config.data_root and '{' not in config.spans.pattern:
    # A flat folder needs no span resolution: its files are checked before
    # TFX and the user's module are imported (about 10 s), so a bad file
    # is named at once, and only once (a pass over every row).
    check_csv_files(config.data_root, config.spans.pattern)
    checked = frozenset([config.spans.pattern])
  usercode.check_module(config)
  from components import spans
  from components.example_gen import check_spans

  try:
    # TFX's own check (one {SPAN}, or each date spec once); it imports TFX,
    # which the config does not.
    spans.has_span_spec(config.spans.pattern)
  except ValueError as e:
    raise ConfigError(f"config key 'spans.pattern': {e}") from None
  if data and '://' not in config.data_root:
    check_spans(config.data_root, config.spans.pattern, config.spans.window, checked)
  if config.trainer.cluster == 'local' and not config.trainer.expose_cluster:
    check_private_network()


def check_data_root(data_root: str, pattern: str) -> None:
  """A local `data_root` must be a folder holding files (a config mistake,
  exit 2); what is in them is the data's business (DataError, exit 5)."""
  if not os.path.isdir(data_root):
    what = 'is not a folder' if os.path.exists(data_root) else 'does not exist'
    raise ConfigError(f"config key 'data_root': {data_root} {what}")
  if '{' not in pattern and not glob.glob(os.path.join(data_root, pattern)):
    raise ConfigError(f"config key 'data_root': {data_root} has no files matching {pattern!r}")


def check_private_network() -> None:
  """A local cluster's replicas need a private network namespace (or consent to be exposed)."""
  from components.local_cluster import NetworkUnavailable, PrivateNetwork

  try:
    with PrivateNetwork():
      pass
  except NetworkUnavailable as e:
    raise ConfigError(
      "config key 'trainer.expose_cluster': trainer.cluster=local runs its replicas in a "
      f'private network namespace, which this machine cannot make ({e}); their TF servers '
      'would listen on every interface, unauthenticated. Set trainer.expose_cluster=true '
      'to accept that'
    ) from None
