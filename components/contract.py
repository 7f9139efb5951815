"""The typed contract between the pipeline, its executors, training replicas and user code.

Everything that crosses a process boundary (TFX exec properties, a replica's
command line, a TFJob) is one of these frozen models, written with `dump` and
read with `load`: no loose dict keys, no defaults repeated elsewhere.

What the user's `preprocessing_fn` and `trainer_fn` receive as
`custom_config` is `ModuleArgs` as plain JSON values (docs/your-own-table.md,
"The user-module contract").
"""

import json
from typing import Any, Literal

import pydantic

# An evaluator task sleeps this long between evaluations by default (the Estimator's 600 s).
DEFAULT_THROTTLE_SECS = 600
# Hyperparameters that change how a model is trained, not its inputs or the
# shape of its variables: a serving model trained with other values still
# warm-starts, and Transform's cached output stays valid.
TRAINING_ONLY_HPARAMS = ('learning_rate', 'batch_size', 'checkpoint_steps', 'checkpoint_secs')
# What R, pandas and spreadsheets write for a missing number (the config's
# `missing_values` default); an empty cell is always missing.
MISSING_VALUES = ('NA', 'N/A', 'NaN', 'nan', 'null', 'NULL', 'None', '#N/A')


class Frozen(pydantic.BaseModel):
  """A model that is immutable, refuses unknown keys and validates on construction."""

  class Config:
    frozen = True
    extra = 'forbid'
    validate_all = True
    smart_union = True


class _Task(Frozen):
  # The raw column the label comes from: required for training and
  # evaluation, absent when serving.
  label: str = pydantic.Field(..., min_length=1)
  # The key of the Estimator's predictions that TFMA evaluates. Empty: the
  # name TF's canned Estimators use for this task.
  prediction_key: str = ''

  @property
  def predictions(self) -> str:
    return self.prediction_key or DEFAULT_PREDICTION_KEYS[self.type]


class BinaryTask(_Task):
  type: Literal['binary'] = 'binary'
  # The label's two values as written in the data, negative first; empty:
  # the label is numeric, 1 (or above 0.5) meaning positive.
  classes: tuple[str, ...] = ()

  @pydantic.validator('classes')
  def _two_classes(cls, value):
    if value and (len(value) != 2 or len(set(value)) != 2):
      raise ValueError('must be empty (a 0/1 label) or two distinct values, negative first')
    return value

  @property
  def num_classes(self) -> int:
    return 2


class MulticlassTask(_Task):
  type: Literal['multiclass'] = 'multiclass'
  # The label's values as written in the data; class i is classes[i].
  classes: tuple[str, ...] = ()
  # Or, for a label that holds class ids 0 .. num_classes-1: their number.
  num_classes_: int | None = pydantic.Field(None, alias='num_classes')

  class Config:
    allow_population_by_field_name = True

  @pydantic.root_validator(skip_on_failure=True)
  def _classes_or_count(cls, values):
    classes, count = values.get('classes'), values.get('num_classes_')
    if bool(classes) == (count is not None):
      raise ValueError('give either classes (the label values) or num_classes (ids 0..n-1)')
    if classes and (len(classes) < 2 or len(set(classes)) != len(classes)):
      raise ValueError('classes must be at least two distinct values')
    if count is not None and (isinstance(count, bool) or count < 2):
      raise ValueError('num_classes must be at least 2')
    return values

  @property
  def num_classes(self) -> int:
    return len(self.classes) if self.classes else self.num_classes_

  @property
  def class_names(self) -> list[str]:
    return list(self.classes) if self.classes else [str(i) for i in range(self.num_classes)]


class RegressionTask(_Task):
  type: Literal['regression'] = 'regression'


Task = BinaryTask | MulticlassTask | RegressionTask
TaskField = pydantic.Field(..., discriminator='type')
# The prediction keys of TF's canned Estimators, which TFMA also looks for.
DEFAULT_PREDICTION_KEYS = {
  'binary': 'logistic',
  'multiclass': 'probabilities',
  'regression': 'predictions',
}


class ModuleArgs(Frozen):
  """`custom_config` of the user's `preprocessing_fn` and `trainer_fn`."""

  task: Task = TaskField
  # The config's `trainer.hparams`, untouched.
  hparams: dict[str, Any] = {}
  # This replica's share of the training data: keep every num_shards-th
  # record starting at shard_index (1 and 0 outside a multi-worker cluster).
  num_shards: int = 1
  shard_index: int = 0
  # EvalSpec.throttle_secs: seconds an evaluator task waits between evaluations.
  throttle_secs: int = DEFAULT_THROTTLE_SECS
  # SHA-256 of the user's source files: in the components' config so that
  # TFX's cache key changes with the code.
  code_fingerprint: str = ''

  def shaping(self) -> 'ModuleArgs':
    """These args without TRAINING_ONLY_HPARAMS: what shapes the data and the
    model, and so what a cached Transform or a warm start must match."""
    hparams = {k: v for k, v in self.hparams.items() if k not in TRAINING_ONLY_HPARAMS}
    return self.copy(update={'hparams': hparams})


class Resources(Frozen):
  """A pod's CPU (cores) and memory (GB of 10^9 bytes): what it asks for and its cap."""

  cpu: float = pydantic.Field(1.0, gt=0)
  memory_gb: float = pydantic.Field(4.0, gt=0)
  cpu_limit: float = pydantic.Field(2.0, gt=0)
  memory_limit_gb: float = pydantic.Field(4.0, gt=0)

  @pydantic.root_validator(skip_on_failure=True)
  def _limits_cover_requests(cls, values):
    for request, limit in (('cpu', 'cpu_limit'), ('memory_gb', 'memory_limit_gb')):
      if values[limit] < values[request]:
        raise ValueError(f'{limit} ({values[limit]:g}) is below {request} ({values[request]:g})')
    return values

  def kubernetes(self) -> dict:
    """As a container's `resources` in a Kubernetes manifest."""
    return {
      'requests': {'cpu': f'{self.cpu:g}', 'memory': f'{self.memory_gb:g}G'},
      'limits': {'cpu': f'{self.cpu_limit:g}', 'memory': f'{self.memory_limit_gb:g}G'},
    }


class PartialOverrides(Frozen):
  """A model whose fields, given in part, keep their defaults' other values: setting
  `trainer.cpu` keeps the Trainer's own memory, not the base model's."""

  @pydantic.root_validator(pre=True)
  def _over_defaults(cls, values):
    merged = dict(values)
    for name, value in values.items():
      field = cls.__fields__.get(name)
      if isinstance(value, dict) and field is not None and isinstance(field.default, Frozen):
        merged[name] = {**field.default.dict(), **value}
    return merged


class ReplicaResources(PartialOverrides):
  """Resources of each kind of TFJob replica."""

  chief: Resources = Resources(cpu=2, memory_gb=4, cpu_limit=2, memory_limit_gb=4)
  worker: Resources = Resources(cpu=2, memory_gb=4, cpu_limit=2, memory_limit_gb=4)
  ps: Resources = Resources(cpu=1, memory_gb=2, cpu_limit=1, memory_limit_gb=2)
  evaluator: Resources = Resources(cpu=1, memory_gb=4, cpu_limit=2, memory_limit_gb=4)


class ClusterSpec(Frozen):
  """Where the Trainer's replicas run."""

  mode: Literal['none', 'local', 'kubeflow'] = 'none'
  workers: int = 0
  parameter_servers: int = 0
  evaluator: bool = False
  max_restarts: int = 3
  timeout_s: float = 0
  # local: let the replicas' TF servers listen on every interface (default:
  # they run in a private network namespace, reachable from nowhere else).
  expose: bool = False
  # kubeflow: storage every replica reaches, the pipeline image, and the PVC.
  shared_dir: str = ''
  image: str = ''
  # Empty: the namespace of the pod the Trainer runs in.
  namespace: str = ''
  pvc: str = ''
  mount_path: str = ''
  resources: ReplicaResources = ReplicaResources()


class TrainerPayload(Frozen):
  """Everything the Trainer executor needs beyond TFX's own Trainer arguments."""

  module_args: ModuleArgs
  cluster: ClusterSpec = ClusterSpec()
  # Start from the weights of the model serving from push_dir, if its
  # architecture string equals this one.
  warm_start: bool = True
  push_dir: str = ''
  architecture: str = ''


def dump(model: Frozen) -> dict:
  """`model` as plain JSON values (what TFX's custom_config and JSON files hold)."""
  return json.loads(model.json(by_alias=True))


def load(cls, data: dict | str | None):
  """Parses what `dump` wrote; raises ValueError naming the bad field."""
  if isinstance(data, str):
    data = json.loads(data)
  try:
    return cls.parse_obj(data or {})
  except pydantic.ValidationError as e:
    raise ValueError(f'{cls.__name__}: {one_line(e)}') from None


def one_line(error: pydantic.ValidationError, prefix: str = '') -> str:
  """The first problem of a validation error, as `key 'a.b': message`."""
  first = error.errors()[0]
  # Discriminated unions and root validators add the model's name and
  # '__root__' to the location; the user wrote neither.
  key = '.'.join(
    str(part) for part in first['loc'] if part != '__root__' and not str(part).endswith('Task')
  )
  return f'key {prefix + key!r}: {first["msg"]}'


class DriftPolicy(Frozen):
  """When a new span differs too much from the previous one to train on.

  The newest span's eval rows are compared with the previous span's (TFDV's
  drift comparators): L-infinity distance for categorical features (strings
  and categorical integers), Jensen-Shannon divergence for numeric ones.
  """

  enabled: bool = True
  # Two random samples of the taxi data (500 to 5,000 rows each) measure up
  # to 0.10 (L-infinity) and 0.24 (Jensen-Shannon, on quantile histograms:
  # see components.drift); trip_miles * 4 + 3 measures 0.67 or more. Set
  # thresholds above what your spans measure when nothing changed: every
  # run's summary lists every measurement.
  categorical_threshold: float = pydantic.Field(0.25, ge=0, le=1)
  numeric_threshold: float = pydantic.Field(0.3, ge=0, le=1)
  # Per feature, overriding the two above and any comparator in the schema.
  thresholds: dict[str, pydantic.confloat(ge=0, le=1)] = {}
  ignore: tuple[str, ...] = ()  # features never compared
  # Train on a drifted span anyway (e.g. `run --accept-drift`). The
  # acceptance is recorded, so later runs on the same spans do not stop again.
  accept: bool = False


class DriftGate(Frozen):
  """What the validator executor needs for the drift gate."""

  policy: DriftPolicy = DriftPolicy()
  # Where accepted drifts are recorded (storage that outlives runs).
  records_dir: str = ''


# The Evaluator's blessing records the comparison under this key (JSON of
# `components.evaluation.judge_change`).
CHANGE_KEY = 'change'


class ChangeGate(Frozen):
  """How the Evaluator compares the candidate with the model now serving
  (see `components.evaluation.judge_change`)."""

  # TFMA's name of the gated metric, and its direction.
  metric: str
  higher_is_better: bool
  # How much worse than the serving model's the candidate's metric may be,
  # beyond the noise of the eval rows.
  max_change: float = 0.0
  # Non-empty: a person's reason to replace the serving model whatever the
  # comparison says (`run --replace-serving REASON`); the threshold still holds.
  replace_reason: str = ''
