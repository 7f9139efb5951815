"""The run record: what a run ended in (`Outcome`, with its exit code and
words), its components' states, and `RunSummary`, the one definition of
`runs/<run id>/summary.json` that the run service writes and every view reads."""

import enum
import json
from typing import Any, Literal

import pydantic
from pydantic import StrictFloat, StrictInt, StrictStr

# Component states in the record.
EXECUTED, CACHED, FAILED, SKIPPED = 'executed', 'cached', 'failed', 'skipped'

# Exit codes that are not a run's outcome.
EXIT_USAGE = 2  # a bad command line, config or user module: nothing ran
# Another run holds the output root or serving directory: try again later
# (sysexits' EX_TEMPFAIL, which schedulers know as "retry").
EXIT_LOCKED = 75


class Outcome(str, enum.Enum):
  """What a run did; each has its exit code, so a scheduler can tell them apart."""

  PUSHED = 'pushed'
  NOT_PUSHED = 'not_pushed'
  NOTHING_NEW = 'nothing_new'
  DATA_REFUSED = 'data_refused'
  FAILED = 'failed'
  ROLLBACK = 'rollback'  # `rollback`'s record, not a run's

  @property
  def exit_code(self) -> int:
    return _EXIT[self]

  @property
  def text(self) -> str:
    """The words the console and the report use for it."""
    return _TEXT[self]

  @property
  def next_step(self) -> str | None:
    """What to do after it, for an outcome that is not a push."""
    return _NEXT.get(self)


_EXIT = {
  Outcome.PUSHED: 0,
  Outcome.FAILED: 1,
  Outcome.NOT_PUSHED: 3,
  Outcome.NOTHING_NEW: 4,
  Outcome.DATA_REFUSED: 5,
  Outcome.ROLLBACK: 0,
}
_TEXT = {
  Outcome.PUSHED: 'a new model is serving',
  Outcome.NOT_PUSHED: 'trained, not pushed; the serving model is unchanged',
  Outcome.NOTHING_NEW: 'no new data or code: nothing to train',
  Outcome.DATA_REFUSED: 'the data was refused: nothing trained, the serving model is unchanged',
  Outcome.FAILED: 'the serving model is unchanged',
  Outcome.ROLLBACK: 'an earlier model serves again',
}
_NEXT = {
  Outcome.NOT_PUSHED: "the report's Decision section says why; `run --replace-serving REASON` "
  'pushes a model worse than the serving one on purpose',
  Outcome.NOTHING_NEW: 'new data in data_root, or a change to the code or config, trains again',
  Outcome.DATA_REFUSED: 'fix the data named above; if the world really changed, '
  '`run --accept-drift` (drift) or edit the schema on purpose (`make schema`)',
  Outcome.FAILED: 'the line above names the component and the cause, the log has everything; '
  'a plain rerun reuses what finished',
}

EXIT_PUSHED = Outcome.PUSHED.exit_code
EXIT_FAILED = Outcome.FAILED.exit_code
EXIT_NOT_PUSHED = Outcome.NOT_PUSHED.exit_code
EXIT_NOTHING_NEW = Outcome.NOTHING_NEW.exit_code
EXIT_DATA_REFUSED = Outcome.DATA_REFUSED.exit_code

EXIT_CODES_HELP = f"""exit codes of `run`:
  {EXIT_PUSHED}   a new model was trained, blessed and pushed
  {EXIT_NOT_PUSHED}   a new model was trained but not pushed (the serving model is unchanged)
  {EXIT_NOTHING_NEW}   nothing new (no new span, code or config): nothing was trained
  {EXIT_DATA_REFUSED}   the data was refused (malformed, invalid, drifted): nothing was trained
  {EXIT_FAILED}   the run failed (the serving model is unchanged)
  {EXIT_USAGE}   a bad command line, config or user module: nothing ran
  {EXIT_LOCKED}  another run holds the output root or serving directory"""


# The record's own vocabulary beyond the outcome: a run's status while and after it runs.
SUCCEEDED, RUNNING, INTERRUPTED = 'succeeded', 'running', 'interrupted'
# A summary file that is not a run record (truncated, or not ours) is listed so.
UNREADABLE = 'unreadable'
STATUSES = (SUCCEEDED, FAILED, RUNNING, INTERRUPTED, UNREADABLE)

# A metric's value: example counts are integers, the rest floats (StrictInt
# first, so pydantic never turns 0.95 into 0).
Number = StrictInt | StrictFloat


class _Model(pydantic.BaseModel):
  class Config:
    extra = 'forbid'
    allow_mutation = True
    validate_assignment = True


class Component(_Model):
  name: str
  state: str
  seconds: float = 0.0


class Change(_Model):
  """The candidate against the serving model (`components.evaluation.judge_change`)."""

  diff: float
  low: float
  high: float
  verdict: str
  blocks: bool
  replace_reason: str | None = None


class Gate(_Model):
  """The gated metric, for the candidate and the serving model, and why the model
  was or was not blessed."""

  metric: str
  higher_is_better: bool = True
  candidate: float | None = None
  serving: float | None = None
  threshold: float | None = None
  max_change: float | None = None
  change: Change | None = None
  reason: str | None = None


class Spans(_Model):
  train: list[int]
  eval: int
  previous: int | None = None


class Training(_Model):
  model_run: str
  model: str | None = None
  warm_start_version: int | None = None
  warm_start: str | None = None
  # The chief's throughput record (components.replica), when it wrote one.
  train_steps: int | None = None
  batch_size: int | None = None
  seconds: float | None = None
  steps_per_second: float | None = None
  examples_per_second: float | None = None


class Drift(_Model):
  """The drift gate's record (`components.validation`): the span compared, each
  feature's measurement, and when a person accepted the drift."""

  span: int | None = None
  measurements: list[dict[str, Any]]
  accepted_at: str | None = None


class DamagedVersion(_Model):
  version: int
  path: str
  moved_to: str
  problem: str


class RunSummary(_Model):
  """One run's record, `runs/<run id>/summary.json`; a rollback's too (`kind`).

  Written by the run service (`pipeline.service.lifecycle`, `history`),
  read by `runs`, `models`, the report and the unchanged-rerun answer.
  """

  run_id: StrictStr
  kind: Literal['run', 'rollback'] = 'run'
  status: StrictStr
  outcome: Outcome | None = None
  error: str | None = None
  runner: str | None = None
  wall_seconds: float | None = None
  log_file: str | None = None
  report: str | None = None
  # Component states and timings, in the order they ran.
  components: list[Component] = []
  # What the data was: the spans read, and the drift gate's measurements.
  spans: Spans | None = None
  drift: Drift | None = None
  training: Training | None = None
  # The candidate's metrics and the serving model's, overall and per slice;
  # for multi-class, per class and the confusion matrix (rows: true class).
  metrics: dict[str, Number] = {}
  baseline_metrics: dict[str, Number] = {}
  slices: dict[str, dict[str, Number]] = {}
  baseline_slices: dict[str, dict[str, Number]] = {}
  per_class: dict[str, dict[str, Number]] | None = None
  confusion_matrix: list[list[int]] | None = None
  gate: Gate | None = None
  blessed: bool = False
  blessing_reason: str | None = None
  pushed_path: str | None = None
  pushed_version: int | None = None
  not_pushed_reason: str | None = None
  serving_path: str | None = None
  damaged_versions: list[DamagedVersion] = []
  # Each output artifact's URI, by output key.
  artifacts: dict[str, str] = {}
  # The resolved config, and what the run read (`pipeline.service.unchanged`).
  config: dict[str, Any] | None = None
  inputs: dict[str, Any] | None = None
  unchanged_since: str | None = None
  # A running record: who runs it.
  pid: int | None = None
  started_at: str | None = None
  # A rollback's record.
  rolled_back_to: int | None = None
  replaced_version: int | None = None
  # An unreadable record: the file it came from.
  summary_file: str | None = None

  @pydantic.validator('status')
  def _known_status(cls, value):
    if value not in STATUSES:
      raise ValueError(f'{value!r} is not one of {", ".join(STATUSES)}')
    return value

  def to_json(self) -> str:
    return self.json(indent=2)

  def plain(self) -> dict:
    """The record as JSON-ready values (what `summary.json` holds)."""
    return json.loads(self.json())
