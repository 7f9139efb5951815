"""The pipeline's typed, frozen configuration: a YAML file plus `key=value` overrides.

Parsed once at the entry point. Every error names the offending key.
"""

import dataclasses
import pathlib
import re
import types
import typing
from typing import Any, Mapping, Sequence

import yaml

from components.cluster import CLUSTER_MODES

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
# The estimators the trainer module builds (`trainer.estimator`).
ESTIMATOR_KINDS = ('custom', 'canned', 'keras')
# How the data-processing components run Beam (`beam.runner`).
BEAM_RUNNERS = ('auto', 'in_process', 'multi_process', 'portable', 'custom')
BEAM_ENVIRONMENTS = ('loopback', 'process')
DEFAULT_CONFIG = PROJECT_ROOT / 'pipeline' / 'configs' / 'default.yaml'


class ConfigError(ValueError):
  """A config file or override that cannot be used; the message names the key."""


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
  estimator: str = 'custom'
  train_steps: int = 2000
  eval_steps: int = 1000
  batch_size: int = 128
  learning_rate: float = 0.05
  hidden_units: tuple[int, ...] = (64, 32, 16)
  checkpoint_steps: int = 1000
  # Start from the weights of the model now serving, when it has the same architecture.
  warm_start: bool = True
  # none: one process; local: chief, workers and parameter servers as processes
  # on this machine; kubeflow: a TFJob on the cluster (see the kubeflow section).
  cluster: str = 'none'
  workers: int = 0  # besides the chief
  parameter_servers: int = 0
  evaluator: bool = False  # an evaluator task that evaluates checkpoints as they come
  max_restarts: int = 3  # per worker / parameter server / evaluator; the chief never restarts
  timeout_s: int = 0  # the Trainer fails, stopping every replica, after this long; 0: no limit
  # kubeflow: a directory every replica and the launcher reach (a PVC mount
  # path, or gs:// or s3://) where the model directory lives.
  shared_dir: str = ''

  def validate(self):
    _check(self.cluster in CLUSTER_MODES, 'trainer.cluster',
           f'must be one of {", ".join(CLUSTER_MODES)}, got {self.cluster!r}')
    for key in ('workers', 'parameter_servers', 'max_restarts', 'timeout_s'):
      _check(getattr(self, key) >= 0, f'trainer.{key}', 'must be zero or a positive integer')
    if self.cluster == 'none':
      for key in ('workers', 'parameter_servers', 'evaluator'):
        _check(not getattr(self, key), f'trainer.{key}',
               'needs trainer.cluster local or kubeflow (it is none)')
    # Without parameter servers each worker would train its own copy of the variables.
    _check(not self.workers or self.parameter_servers > 0, 'trainer.workers',
           'workers need at least one trainer.parameter_servers')
    _check(self.cluster != 'kubeflow' or bool(self.shared_dir), 'trainer.shared_dir',
           'is required with trainer.cluster=kubeflow (storage every replica reaches)')
    _check(self.estimator in ESTIMATOR_KINDS, 'trainer.estimator',
           f'must be one of {", ".join(ESTIMATOR_KINDS)}, got {self.estimator!r}')
    for key in ('train_steps', 'eval_steps', 'batch_size', 'checkpoint_steps'):
      _check(getattr(self, key) > 0, f'trainer.{key}', 'must be a positive integer')
    _check(0 < self.learning_rate < 1, 'trainer.learning_rate', 'must be in (0, 1)')
    _check(len(self.hidden_units) > 0 and all(u > 0 for u in self.hidden_units),
           'trainer.hidden_units', 'must be a non-empty list of positive integers')


@dataclasses.dataclass(frozen=True)
class EvaluatorConfig:
  # Value threshold: a model below this eval AUC is never blessed.
  min_auc: float = 0.9
  # Change threshold: how far below the serving model's AUC a candidate may be.
  max_auc_drop: float = 0.0
  slice_features: tuple[str, ...] = ('trip_start_hour',)

  def validate(self):
    _check(0.0 <= self.min_auc <= 1.0, 'evaluator.min_auc', 'must be between 0 and 1')
    _check(0.0 <= self.max_auc_drop <= 1.0, 'evaluator.max_auc_drop',
           'must be between 0 and 1')


@dataclasses.dataclass(frozen=True)
class BeamConfig:
  # auto: in_process below auto_threshold_mb of input CSV, multi_process above.
  # in_process: DirectRunner in this process (no Beam arguments at all).
  # multi_process: DirectRunner with `workers` worker processes.
  # portable: PortableRunner on Beam's embedded job server (or `job_endpoint`).
  # custom: exactly `args`, e.g. for Flink, Spark or Dataflow (see README).
  runner: str = 'auto'
  workers: int = 0  # multi_process: worker processes; 0 means one per CPU
  # Measured on 2 cores: at 1.9 MB of CSV (the bundled data) in-process ingest
  # is 2x faster than multi-process; at 19 MB multi-process takes the whole
  # pipeline from 268 s to 185 s.
  auto_threshold_mb: int = 10
  # portable: loopback runs the SDK worker in the launcher; process runs a
  # local worker pool that starts worker processes.
  environment: str = 'loopback'
  job_endpoint: str = ''  # portable: host:port of a job server; empty: the embedded one
  args: tuple[str, ...] = ()  # appended to the options of every runner

  def validate(self):
    _check(self.runner in BEAM_RUNNERS, 'beam.runner',
           f'must be one of {", ".join(BEAM_RUNNERS)}, got {self.runner!r}')
    _check(self.environment in BEAM_ENVIRONMENTS, 'beam.environment',
           f'must be one of {", ".join(BEAM_ENVIRONMENTS)}, got {self.environment!r}')
    _check(self.workers >= 0, 'beam.workers', 'must be zero or a positive integer')
    _check(self.auto_threshold_mb >= 0, 'beam.auto_threshold_mb', 'must be zero or more')
    _check(all(a.startswith('--') for a in self.args), 'beam.args',
           'every item must be a pipeline option starting with --')
    _check(self.runner != 'custom' or any(a.startswith('--runner') for a in self.args),
           'beam.args', 'beam.runner=custom needs --runner=... among beam.args')


@dataclasses.dataclass(frozen=True)
class Locations:
  """Where the components find data and write outputs, as paths or URIs they can open."""
  data_root: str
  schema_file: str
  pipeline_root: str
  push_dir: str


@dataclasses.dataclass(frozen=True)
class KubeflowConfig:
  # The pipeline image (see Dockerfile): Kubeflow components and TFJob replicas run it.
  image: str = 'taxi-estimator-pipeline:latest'
  namespace: str = 'kubeflow'
  # A PersistentVolumeClaim mounted at mount_path in every pod (pipeline
  # components and TFJob replicas); empty if everything is on gs:// or s3://.
  pvc: str = 'taxi-pipeline'
  mount_path: str = '/mnt/shared'
  # Locations as the pods see them. The defaults are the bundled data and
  # schema inside the image; pipeline_root must be storage all pods share.
  pipeline_root: str = '/mnt/shared/pipeline'
  data_root: str = '/pipeline/data/taxi'
  schema_file: str = '/pipeline/data/schema/schema.pbtxt'
  # Where blessed models are pushed: a mounted volume (the push is an atomic
  # rename, which object stores do not offer).
  serving_dir: str = '/mnt/shared/serving'
  # KFP API server of `python -m pipeline submit` (also --host).
  host: str = ''

  def validate(self):
    _check(bool(self.image), 'kubeflow.image', 'must name a container image')
    _check(bool(self.namespace), 'kubeflow.namespace', 'must not be empty')
    _check('://' not in self.serving_dir, 'kubeflow.serving_dir',
           'must be a mounted path: the push is an atomic rename, which object stores lack')


@dataclasses.dataclass(frozen=True)
class Config:
  pipeline_name: str = 'taxi-estimator'
  # Importable module with `preprocessing_fn` and `trainer_fn`.
  module: str = 'trainer_module'
  data_root: pathlib.Path = PROJECT_ROOT / 'data' / 'taxi'
  schema_file: pathlib.Path = PROJECT_ROOT / 'data' / 'schema' / 'schema.pbtxt'
  # Everything the pipeline writes goes under here.
  output_root: pathlib.Path = PROJECT_ROOT / 'outputs'
  # Where blessed models are pushed; empty means <output_root>/serving.
  serving_dir: pathlib.Path | None = None
  trainer: TrainerConfig = TrainerConfig()
  evaluator: EvaluatorConfig = EvaluatorConfig()
  beam: BeamConfig = BeamConfig()
  kubeflow: KubeflowConfig = KubeflowConfig()

  def validate(self):
    _check(re.fullmatch(r'[a-z0-9][a-z0-9-]{0,62}', self.pipeline_name) is not None,
           'pipeline_name', f'must be lowercase letters, digits and "-", starting with a letter '
           f'or digit, at most 63 characters (what Kubeflow accepts), got {self.pipeline_name!r}')
    _check(all(part.isidentifier() for part in self.module.split('.')), 'module',
           f'must be a dotted Python module path, got {self.module!r}')
    self.trainer.validate()
    self.evaluator.validate()
    self.beam.validate()
    self.kubeflow.validate()
    _check(self.kubeflow.mount_path.startswith('/'), 'kubeflow.mount_path', 'must be an absolute path')
    _check(not (self.kubeflow.pvc and self.trainer.cluster == 'kubeflow')
           or '://' in self.trainer.shared_dir
           or self.trainer.shared_dir.startswith(self.kubeflow.mount_path.rstrip('/') + '/'),
           'trainer.shared_dir', 'must be under kubeflow.mount_path (where kubeflow.pvc is mounted) '
           'or a gs:// or s3:// path')

  def local_locations(self) -> Locations:
    return Locations(str(self.data_root), str(self.schema_file), str(self.pipeline_root),
                     str(self.push_dir))

  def kubeflow_locations(self) -> Locations:
    """Locations on Kubeflow; the pipeline root and serving dir must be set."""
    kf = self.kubeflow
    _check(bool(kf.pipeline_root), 'kubeflow.pipeline_root',
           'must not be empty to compile for Kubeflow (gs://bucket/tfx, or a path on kubeflow.pvc)')
    _check(bool(kf.serving_dir), 'kubeflow.serving_dir',
           'must not be empty to compile for Kubeflow (a path on kubeflow.pvc)')
    return Locations(kf.data_root, kf.schema_file, kf.pipeline_root, kf.serving_dir)

  @property
  def pipeline_root(self) -> pathlib.Path:
    return self.output_root / 'pipeline'

  @property
  def metadata_path(self) -> pathlib.Path:
    return self.output_root / 'metadata.sqlite'

  @property
  def runs_dir(self) -> pathlib.Path:
    return self.output_root / 'runs'

  @property
  def push_dir(self) -> pathlib.Path:
    return self.serving_dir or self.output_root / 'serving'


def _check(ok: bool, key: str, message: str):
  if not ok:
    raise ConfigError(f'config key {key!r}: {message}')


def _convert(value: Any, hint: Any, key: str, base_dir: pathlib.Path) -> Any:
  """Converts a YAML value to the field's type, or raises ConfigError."""
  origin = typing.get_origin(hint)
  if origin in (typing.Union, types.UnionType):
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if value is None or value == '':
      return None
    return _convert(value, args[0], key, base_dir)
  if hint is pathlib.Path:
    if not isinstance(value, str) or not value:
      raise ConfigError(f'config key {key!r}: expected a path, got {value!r}')
    path = pathlib.Path(value).expanduser()
    return path if path.is_absolute() else (base_dir / path).resolve()
  if origin is tuple:
    item_type = typing.get_args(hint)[0]
    if not isinstance(value, Sequence) or isinstance(value, str):
      raise ConfigError(f'config key {key!r}: expected a list, got {value!r}')
    return tuple(_convert(v, item_type, key, base_dir) for v in value)
  if hint is bool:
    if not isinstance(value, bool):
      raise ConfigError(f'config key {key!r}: expected true or false, got {value!r}')
    return value
  if hint is int:
    if isinstance(value, bool) or not isinstance(value, int):
      raise ConfigError(f'config key {key!r}: expected an integer, got {value!r}')
    return value
  if hint is float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ConfigError(f'config key {key!r}: expected a number, got {value!r}')
    return float(value)
  if hint is str:
    if not isinstance(value, str):
      raise ConfigError(f'config key {key!r}: expected a string, got {value!r}')
    return value
  raise TypeError(f'unsupported config type {hint} for {key}')


def _merge(base: dict, key: str, value: Any):
  node = base
  *parents, leaf = key.split('.')
  for part in parents:
    child = node.setdefault(part, {})
    if not isinstance(child, dict):
      raise ConfigError(f'config key {key!r}: {part!r} is not a section')
    node = child
  node[leaf] = value


def _relative_bases(values: dict, file_dir: pathlib.Path, override_dir: pathlib.Path,
                    overridden: set[str], prefix: str = '') -> dict:
  """For each leaf, the directory its relative paths are resolved against."""
  bases = {}
  for name, value in values.items():
    key = prefix + name
    if isinstance(value, dict):
      bases[name] = _relative_bases(value, file_dir, override_dir, overridden, key + '.')
    else:
      bases[name] = override_dir if key in overridden else file_dir
  return bases


def load_config(path: pathlib.Path | str | None = None,
                overrides: Sequence[str] = (),
                cwd: pathlib.Path | None = None) -> Config:
  """Reads a YAML config, applies `key=value` overrides and validates the result.

  Relative paths in the file are relative to the file; relative paths in
  overrides are relative to `cwd` (where the user typed them).

  Raises:
    ConfigError: with a one-line message naming the bad key or file.
  """
  path = pathlib.Path(path) if path else DEFAULT_CONFIG
  try:
    values = yaml.safe_load(path.read_text()) or {}
  except OSError as e:
    raise ConfigError(f'config file {path}: {e.strerror}') from None
  except yaml.YAMLError as e:
    raise ConfigError(f'config file {path}: not valid YAML ({e.__class__.__name__})') from None
  if not isinstance(values, dict):
    raise ConfigError(f'config file {path}: expected a mapping at the top level')
  overridden = set()
  for item in overrides:
    key, sep, raw = item.partition('=')
    if not sep or not key:
      raise ConfigError(f'override {item!r}: expected key=value')
    try:
      value = yaml.safe_load(raw) if raw else ''
    except yaml.YAMLError:
      value = raw
    _merge(values, key.strip(), value)
    overridden.add(key.strip())
  bases = _relative_bases(values, path.resolve().parent, (cwd or pathlib.Path.cwd()), overridden)
  config = _build_with_bases(Config, values, '', bases)
  config.validate()
  return config


def _build_with_bases(cls, values, prefix, bases):
  hints = typing.get_type_hints(cls)
  unknown = sorted(set(values) - set(hints))
  if unknown:
    raise ConfigError(f'unknown config key {prefix + unknown[0]!r}')
  kwargs = {}
  for name, value in values.items():
    hint = hints[name]
    if dataclasses.is_dataclass(hint):
      if not isinstance(value, Mapping):
        raise ConfigError(f'config key {prefix + name!r}: expected a mapping, got {value!r}')
      kwargs[name] = _build_with_bases(hint, value, prefix + name + '.', bases[name])
    else:
      kwargs[name] = _convert(value, hint, prefix + name, bases[name])
  return cls(**kwargs)


def to_dict(config: Config) -> dict:
  """The config as plain JSON-able values (paths as strings)."""
  def plain(v):
    if isinstance(v, pathlib.Path):
      return str(v)
    if isinstance(v, tuple):
      return [plain(x) for x in v]
    if isinstance(v, dict):
      return {k: plain(x) for k, x in v.items()}
    return v
  return plain(dataclasses.asdict(config))
