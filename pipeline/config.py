"""The pipeline's typed, frozen configuration: a YAML file plus `key=value` overrides.

Parsed once at the entry point and validated on construction (pydantic).
Every error is one line naming the offending key.
"""

import dataclasses
import difflib
import pathlib
import re
from collections.abc import Sequence
from typing import Any, Literal

import pydantic
import yaml

from components.contract import (
  MISSING_VALUES,
  ClusterSpec,
  DriftPolicy,
  Frozen,
  PartialOverrides,
  ReplicaResources,
  Resources,
  Task,
  TaskField,
  one_line,
)
from components.metrics import TASK_METRICS, gate_metrics

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / 'pipeline' / 'configs' / 'default.yaml'
# Keys holding paths on this machine: relative values are resolved against
# the config file's folder (or, for --set, the current directory). They may
# also be URIs (gs://, s3://), kept as written.
PATH_KEYS = ('code_dir', 'data_root', 'schema_file', 'output_root', 'serving_dir')
# A number as YAML 1.2 writes it; YAML 1.1 (PyYAML) reads `1e-3` as a string.
_NUMBER = re.compile(r'[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?')


class ConfigError(ValueError):
  """A config file or override that cannot be used; the message names the key."""


class Number(float):
  """A float field that accepts integers but not booleans or strings."""

  @classmethod
  def __get_validators__(cls):
    yield cls._validate

  @classmethod
  def _validate(cls, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise TypeError('expected a number')
    return float(value)


def _is_uri(path: str) -> bool:
  return '://' in path


def _push_destination(value: str) -> str:
  if _is_uri(value):
    raise ValueError(
      'must be a local or mounted path: the push is an atomic rename, '
      'which object stores do not offer'
    )
  return value


class TrainerConfig(Frozen):
  train_steps: pydantic.conint(strict=True, gt=0) = 2000
  eval_steps: pydantic.conint(strict=True, gt=0) = 1000
  # Start from the weights of the model now serving, when it was trained with
  # the same code, task and hparams (see components.training.architecture).
  warm_start: pydantic.StrictBool = True
  # Free-form: reaches the user's trainer_fn untouched, as custom_config['hparams'].
  hparams: dict[str, Any] = {}
  # none: one process; local: chief, workers and parameter servers as processes
  # on this machine; kubeflow: a TFJob on the cluster (see the kubeflow section).
  cluster: Literal['none', 'local', 'kubeflow'] = 'none'
  workers: pydantic.conint(strict=True, ge=0) = 0  # besides the chief
  parameter_servers: pydantic.conint(strict=True, ge=0) = 0
  evaluator: pydantic.StrictBool = (
    False  # an evaluator task that evaluates checkpoints as they come
  )
  # Per worker / parameter server / evaluator; the chief never restarts.
  max_restarts: pydantic.conint(strict=True, ge=0) = 3
  timeout_s: pydantic.conint(strict=True, ge=0) = (
    0  # the Trainer fails after this long; 0: no limit
  )
  # local: replicas run in a private network namespace (only loopback), as
  # their TF servers listen on every interface and take unauthenticated
  # requests. true: run them without it, reachable from the network.
  expose_cluster: pydantic.StrictBool = False
  # kubeflow: a directory every replica and the launcher reach (a PVC mount
  # path, or gs:// or s3://) where the model directory lives.
  shared_dir: str = ''

  @pydantic.root_validator(skip_on_failure=True)
  def _cluster_fits(cls, values):
    if values['cluster'] == 'none':
      for key in ('workers', 'parameter_servers', 'evaluator'):
        if values[key]:
          raise _KeyError(key, 'needs trainer.cluster local or kubeflow (it is none)')
    # Without parameter servers each worker would train its own copy of the variables.
    if values['workers'] and not values['parameter_servers']:
      raise _KeyError('workers', 'workers need at least one trainer.parameter_servers')
    if values['cluster'] == 'kubeflow' and not values['shared_dir']:
      raise _KeyError(
        'shared_dir', 'is required with trainer.cluster=kubeflow (storage every replica reaches)'
      )
    return values


class EvaluatorConfig(Frozen):
  # The metric that gates blessing (see components.metrics): binary auc or
  # log_loss; multiclass accuracy or log_loss; regression rmse or mae.
  # Empty: the task's first (auc, accuracy, rmse).
  metric: str = ''
  # Value threshold: the candidate's metric must be at least this (auc,
  # accuracy) or at most this (log_loss, rmse, mae).
  threshold: Number
  # Change threshold: how much worse than the serving model's metric the
  # candidate's may be (0: at least as good).
  max_change: Number = 0.0
  slice_features: tuple[str, ...] = ()
  # Non-empty: why this run may replace the serving model even if it scores
  # worse (`run --replace-serving REASON`); the threshold still holds.
  replace_serving: str = ''

  @pydantic.validator('max_change')
  def _non_negative(cls, value):
    if value < 0:
      raise ValueError('must be zero or more')
    return value


class BeamConfig(Frozen):
  # auto: in_process below auto_threshold_mb of input CSV, multi_process above.
  # in_process: DirectRunner in this process (no Beam arguments at all).
  # multi_process: DirectRunner with `workers` worker processes.
  # portable: PortableRunner on Beam's embedded job server (or `job_endpoint`).
  # custom: exactly `args`, e.g. for Flink, Spark or Dataflow (docs/beam.md).
  runner: Literal['auto', 'in_process', 'multi_process', 'portable', 'custom'] = 'auto'
  workers: pydantic.conint(strict=True, ge=0) = 0  # multi_process: 0 means one per CPU
  # Below it, moving every example between worker processes costs more than
  # the second core gains (docs/beam.md has the measurements).
  auto_threshold_mb: pydantic.conint(strict=True, ge=0) = 10
  # portable: loopback runs the SDK worker in the launcher; process runs a
  # local worker pool that starts worker processes.
  environment: Literal['loopback', 'process'] = 'loopback'
  job_endpoint: str = ''  # portable: host:port of a job server; empty: the embedded one
  args: tuple[str, ...] = ()  # appended to the options of every runner

  @pydantic.root_validator(skip_on_failure=True)
  def _args(cls, values):
    if not all(a.startswith('--') for a in values['args']):
      raise _KeyError('args', 'every item must be a pipeline option starting with --')
    if values['runner'] == 'custom' and not any(a.startswith('--runner') for a in values['args']):
      raise _KeyError('args', 'beam.runner=custom needs --runner=... among beam.args')
    return values


class SpansConfig(Frozen):
  # Which files under data_root a run reads, as TFX's ExampleGen pattern:
  # `*` reads every file as one span; `span-{SPAN}/*` or
  # `{YYYY}-{MM}-{DD}/*` (optionally with `{VERSION}`) one folder per data drop.
  pattern: str = pydantic.Field('*', min_length=1)
  # Train on this many of the newest spans (evaluation is always on the newest).
  window: pydantic.conint(strict=True, ge=1) = 1


@dataclasses.dataclass(frozen=True)
class Locations:
  """Where the components find data and write outputs, as paths or URIs they can open."""

  data_root: str
  schema_file: str
  pipeline_root: str
  push_dir: str
  # Where accepted drift is recorded: storage that outlives runs and `make clean`.
  drift_records: str


class ComponentResources(PartialOverrides):
  """Each Kubeflow task's pod resources; a component not named gets `default`."""

  default: Resources = Resources()
  CsvExampleGen: Resources | None = None
  SchemaGen: Resources | None = None
  StatisticsGen: Resources | None = None
  ExampleValidator: Resources | None = None
  Transform: Resources | None = Resources(cpu=2, memory_gb=8, cpu_limit=2, memory_limit_gb=8)
  Trainer: Resources | None = Resources(cpu=2, memory_gb=8, cpu_limit=2, memory_limit_gb=8)
  Evaluator: Resources | None = Resources(cpu=2, memory_gb=8, cpu_limit=2, memory_limit_gb=8)
  Pusher: Resources | None = None

  def of(self, component_id: str) -> Resources:
    return getattr(self, component_id, None) or self.default


class KubeflowConfig(Frozen):
  # The pipeline image (see Dockerfile): Kubeflow components and TFJob replicas run it.
  image: str = pydantic.Field('estimator-pipeline:latest', min_length=1)
  # Where the Trainer's TFJob runs; empty: the namespace of the pipeline's own
  # pods (a multi-user install's profile namespace).
  namespace: str = ''
  # The service account the pipeline's pods run as (KFP's default; a profile
  # namespace's is default-editor): `manifests` lets it manage the TFJob.
  service_account: str = 'pipeline-runner'
  # A PersistentVolumeClaim mounted at mount_path in every pod (pipeline
  # components and TFJob replicas); empty if everything is on gs:// or s3://.
  pvc: str = 'pipeline-data'
  mount_path: str = '/mnt/shared'
  # The PVC `manifests` writes: its size and storage class (empty: the
  # cluster's default); ReadWriteMany, as pods on several nodes share it.
  pvc_size: str = '20Gi'
  storage_class: str = ''
  # CPU and memory of each task's pod, and of each kind of TFJob replica.
  resources: ComponentResources = ComponentResources()
  replica_resources: ReplicaResources = ReplicaResources()
  # Locations as the pods see them; pipeline_root must be storage all pods
  # share. data_root and schema_file must be set to compile for Kubeflow.
  pipeline_root: str = '/mnt/shared/pipeline'
  data_root: str = ''
  schema_file: str = ''
  # Where blessed models are pushed: a mounted volume (the push is an atomic
  # rename, which object stores do not offer).
  serving_dir: str = '/mnt/shared/serving'
  # KFP 2.x (target kubeflow-v2): where the backend stores artifacts, given at
  # submission (also --pipeline-root): gs://, s3:// or minio://bucket/path
  # (its launcher copies them to and from the pods). No PVC path here.
  v2_pipeline_root: str = ''
  # KFP API server of `python -m pipeline submit` (also --host).
  host: str = ''
  # Multi-user KFP: the profile namespace that owns experiments and runs
  # (also --namespace); empty on a single-user install.
  user_namespace: str = ''

  _mounted = pydantic.validator('serving_dir', allow_reuse=True)(_push_destination)

  @pydantic.validator('mount_path')
  def _absolute(cls, value):
    if not value.startswith('/'):
      raise ValueError('must be an absolute path')
    return value


class Config(Frozen):
  pipeline_name: str = 'estimator-pipeline'
  # Importable module with `preprocessing_fn` and `trainer_fn`.
  module: str
  # A folder put first on the import path for `module` (e.g. a project made
  # by `pipeline init`); empty: `module` is installed.
  code_dir: str = ''
  data_root: str
  schema_file: str
  # Everything the pipeline writes goes under here (a local folder: the
  # metadata store and logs are local files).
  output_root: pathlib.Path
  # Where blessed models are pushed; empty means <output_root>/serving.
  serving_dir: str = ''
  # One run at a time per output root and serving directory: a run that
  # finds either in use waits this long for it, then gives up (0: at once).
  run_lock_wait_s: Number = 0.0
  # Cells read as a missing number in a numeric column, as an empty cell is
  # (in a text column they stay values: `NA` may be a code).
  missing_values: tuple[str, ...] = MISSING_VALUES
  task: Task = TaskField
  spans: SpansConfig = SpansConfig()
  drift: DriftPolicy = DriftPolicy()
  trainer: TrainerConfig = TrainerConfig()
  evaluator: EvaluatorConfig
  beam: BeamConfig = BeamConfig()
  kubeflow: KubeflowConfig = KubeflowConfig()

  @pydantic.validator('pipeline_name')
  def _kfp_name(cls, value):
    if not re.fullmatch(r'[a-z0-9][a-z0-9-]{0,62}', value):
      raise ValueError(
        'must be lowercase letters, digits and "-", starting with a letter or '
        f'digit, at most 63 characters (what Kubeflow accepts), got {value!r}'
      )
    return value

  @pydantic.validator('module')
  def _dotted(cls, value):
    if not all(part.isidentifier() for part in value.split('.')):
      raise ValueError(f'must be a dotted Python module path, got {value!r}')
    return value

  @pydantic.validator('missing_values')
  def _tokens(cls, value):
    for token in value:
      if not token or token != token.strip():
        raise ValueError(f'{token!r}: a token must be non-empty, without surrounding spaces')
    return value

  @pydantic.validator('run_lock_wait_s')
  def _wait_non_negative(cls, value):
    if value < 0:
      raise ValueError('must be zero or more')
    return value

  @pydantic.validator('output_root', 'code_dir')
  def _local(cls, value):
    if _is_uri(str(value)):
      raise ValueError('must be a folder on this machine')
    if str(value) and pathlib.Path(value).exists() and not pathlib.Path(value).is_dir():
      raise ValueError(f'{value} is a file, not a folder')
    return value

  _mounted = pydantic.validator('serving_dir', allow_reuse=True)(_push_destination)

  @pydantic.root_validator(skip_on_failure=True)
  def _fits_together(cls, values):
    task, evaluator, trainer, kf = (
      values['task'],
      values['evaluator'],
      values['trainer'],
      values['kubeflow'],
    )
    allowed = gate_metrics(task.type)
    if evaluator.metric and evaluator.metric not in allowed:
      raise _KeyError(
        'evaluator.metric',
        f'{evaluator.metric!r} cannot gate a {task.type} model; use one of {", ".join(allowed)}',
      )
    metric = TASK_METRICS[task.type][evaluator.metric or allowed[0]]
    if metric.higher_is_better and not 0 <= evaluator.threshold <= 1:
      raise _KeyError('evaluator.threshold', f'{evaluator.metric or allowed[0]} is between 0 and 1')
    if not metric.higher_is_better and evaluator.threshold < 0:
      raise _KeyError('evaluator.threshold', 'must be zero or more')
    if task.label in evaluator.slice_features:
      raise _KeyError('evaluator.slice_features', f'{task.label!r} is the label')
    if (
      kf.pvc
      and trainer.cluster == 'kubeflow'
      and not _is_uri(trainer.shared_dir)
      and not trainer.shared_dir.startswith(kf.mount_path.rstrip('/') + '/')
    ):
      raise _KeyError(
        'trainer.shared_dir',
        'must be under kubeflow.mount_path (where '
        'kubeflow.pvc is mounted) or a gs:// or s3:// path',
      )
    return values

  @property
  def gate_metric(self) -> str:
    """The summary name of the metric that gates blessing."""
    return self.evaluator.metric or gate_metrics(self.task.type)[0]

  def local_locations(self) -> Locations:
    return Locations(
      self.data_root,
      self.schema_file,
      str(self.pipeline_root),
      self.push_dir,
      str(self.output_root / 'drift-acceptances'),
    )

  def kubeflow_locations(self) -> Locations:
    """Locations on Kubeflow; the pipeline root and serving dir must be set."""
    kf = self.kubeflow
    _check(
      bool(kf.pipeline_root),
      'kubeflow.pipeline_root',
      'must not be empty to compile for Kubeflow (gs://bucket/tfx, or a path on kubeflow.pvc)',
    )
    _check(
      bool(kf.serving_dir),
      'kubeflow.serving_dir',
      'must not be empty to compile for Kubeflow (a path on kubeflow.pvc)',
    )
    for key in ('data_root', 'schema_file'):
      _check(
        bool(getattr(kf, key)),
        f'kubeflow.{key}',
        'must not be empty to compile for Kubeflow (where the pods find it)',
      )
    return Locations(
      kf.data_root,
      kf.schema_file,
      kf.pipeline_root,
      kf.serving_dir,
      kf.pipeline_root.rstrip('/') + '/drift-acceptances',
    )

  def cluster_spec(self) -> ClusterSpec:
    """Where the Trainer's replicas run, as the Trainer executor reads it."""
    trainer = self.trainer
    if trainer.cluster == 'none':
      return ClusterSpec()
    spec = ClusterSpec(
      mode=trainer.cluster,
      workers=trainer.workers,
      parameter_servers=trainer.parameter_servers,
      evaluator=trainer.evaluator,
      max_restarts=trainer.max_restarts,
      timeout_s=trainer.timeout_s,
      expose=trainer.expose_cluster,
    )
    if trainer.cluster == 'kubeflow':
      spec = spec.copy(
        update={
          'shared_dir': trainer.shared_dir,
          'image': self.kubeflow.image,
          'namespace': self.kubeflow.namespace,
          'pvc': self.kubeflow.pvc,
          'mount_path': self.kubeflow.mount_path,
          'resources': self.kubeflow.replica_resources,
        }
      )
    return spec

  @property
  def pipeline_root(self) -> pathlib.Path:
    return self.output_root / 'pipeline'

  @property
  def file_lists_dir(self) -> pathlib.Path:
    """The cached artifacts' file lists (pipeline.service.cache_check), beside them."""
    return self.pipeline_root / '.file-lists'

  @property
  def metadata_path(self) -> pathlib.Path:
    return self.output_root / 'metadata.sqlite'

  @property
  def runs_dir(self) -> pathlib.Path:
    return self.output_root / 'runs'

  @property
  def push_dir(self) -> str:
    return self.serving_dir or str(self.output_root / 'serving')


class _KeyError(ValueError):
  """A cross-field problem; `key` is relative to the model that raised it."""

  def __init__(self, key: str, message: str):
    super().__init__(f'\0{key}\0{message}')


def _check(ok: bool, key: str, message: str):
  if not ok:
    raise ConfigError(f'config key {key!r}: {message}')


def _error_line(error: pydantic.ValidationError) -> str:
  first = error.errors()[0]
  message = first['msg']
  if message.startswith('\0'):
    # A root validator's error sits on its model; it names the key itself.
    _, key, message = message.split('\0', 2)
    loc = [p for p in first['loc'] if p != '__root__']
    section = '.'.join(str(p) for p in loc)
    full = key if key.count('.') or not section else f'{section}.{key}'
    return f'config key {full!r}: {message}'
  if first['type'] == 'value_error.extra':
    key = '.'.join(str(p) for p in first['loc'] if not str(p).endswith('Task'))
    section, _, name = key.rpartition('.')
    close = difflib.get_close_matches(name, _keys_at(first['loc'][:-1]), n=1, cutoff=0.75)
    if close:
      hint = f'; did you mean {".".join(filter(None, (section, close[0])))!r}?'
    elif section == 'trainer':
      hint = '; model hyperparameters go under trainer.hparams'
    else:
      hint = ''
    return f'unknown config key {key!r}{hint}'
  return 'config ' + one_line(error)


def _keys_at(loc) -> list[str]:
  """The keys the config accepts in the section at pydantic's error `loc`
  (a union's member, such as a task type, is named in it by its class)."""
  model, union = Config, []
  for part in loc:
    member = next((m for m in union if m.__name__ == part), None)
    field = model.__fields__.get(str(part)) if member is None else None
    if member is not None:
      model, union = member, []
    elif field is not None and isinstance(field.type_, type):
      model, union = field.type_, []
    elif field is not None:
      union = [f.type_ for f in field.sub_fields or [] if isinstance(f.type_, type)]
    else:
      return []
  if union or not issubclass(model, pydantic.BaseModel):
    return []
  return [field.alias for field in model.__fields__.values()]


def parse_value(raw: str) -> Any:
  """A `--set` value: YAML, with numbers like 1e-3 read as numbers."""
  if raw == '':
    return ''
  try:
    value = yaml.safe_load(raw)
  except yaml.YAMLError:
    return raw
  if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
    return float(value)
  return value


def _merge(base: dict, key: str, value: Any):
  node = base
  *parents, leaf = key.split('.')
  for part in parents:
    child = node.setdefault(part, {})
    if not isinstance(child, dict):
      raise ConfigError(f'config key {key!r}: {part!r} is not a section')
    node = child
  node[leaf] = value


def _resolve(value: Any, base: pathlib.Path, key: str) -> Any:
  if not isinstance(value, str):
    raise ConfigError(f'config key {key!r}: expected a path, got {value!r}')
  if not value or _is_uri(value):
    return value
  path = pathlib.Path(value).expanduser()
  return str(path if path.is_absolute() else (base / path).resolve())


def build_config(values: dict) -> Config:
  """A validated Config from plain values; raises ConfigError naming the key."""
  try:
    return Config.parse_obj(values)
  except pydantic.ValidationError as e:
    raise ConfigError(_error_line(e)) from None


def load_config(
  path: pathlib.Path | str | None = None,
  overrides: Sequence[str] = (),
  cwd: pathlib.Path | None = None,
) -> Config:
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
  file_dir = path.resolve().parent
  for key in PATH_KEYS:
    if key in values and values[key] is not None:
      values[key] = _resolve(values[key], file_dir, key)
  for item in overrides:
    key, sep, raw = item.partition('=')
    key = key.strip()
    if not sep or not key:
      raise ConfigError(f'override {item!r}: expected key=value')
    value = parse_value(raw)
    if key in PATH_KEYS:
      value = _resolve(value, cwd or pathlib.Path.cwd(), key)
    _merge(values, key, value)
  return build_config(values)


def to_dict(config: Config) -> dict:
  """The config as plain JSON-able values (paths as strings)."""
  import json

  return json.loads(config.json(by_alias=True))
