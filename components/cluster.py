"""What every training cluster shares: its topology, its failures, and how a replica starts.

TFX starts no training cluster outside Vertex, so the Trainer executor uses
its own: local OS processes (`components.local_cluster`) or a Kubeflow TFJob
(`components.tfjob`), each replica running `python -m components.replica`
with its own `TF_CONFIG`. Estimator's between-graph replication does the
rest: the chief initialises and checkpoints, workers train asynchronously
against the parameter servers, and an optional evaluator task evaluates
checkpoints.
"""

import dataclasses
import pathlib
import signal
import threading
from collections.abc import Callable

# A worker, parameter server or evaluator that dies is restarted this many
# times (per replica) before the Trainer gives up; the chief is never restarted.
DEFAULT_MAX_RESTARTS = 3
LOG_TAIL_LINES = 25
# The volume name of the shared PVC, in TFJob pods and Kubeflow pipeline pods.
SHARED_VOLUME = 'shared'


class TrainingError(RuntimeError):
  """A training cluster failed; the message names the replica and ends with its log."""


@dataclasses.dataclass(frozen=True)
class Topology:
  workers: int = 0
  parameter_servers: int = 0
  evaluator: bool = False

  def tasks(self) -> list[tuple[str, int]]:
    """Every replica as (TF_CONFIG task type, index)."""
    return (
      [('chief', 0)]
      + [('worker', i) for i in range(self.workers)]
      + [('ps', i) for i in range(self.parameter_servers)]
      + ([('evaluator', 0)] if self.evaluator else [])
    )


def describe_exit(returncode: int) -> str:
  if returncode < 0:
    try:
      return f'killed by {signal.Signals(-returncode).name}'
    except ValueError:
      return f'killed by signal {-returncode}'
  return f'exit code {returncode}'


# Lines of a replica's log that are TF's and Python's chatter, not its error.
_NOISE = (
  'WARNING',
  'Instructions for updating',
  'deprecat',
  'W0000',
  'I0000',
  'Use `tf.',
  'Use tf.',
  'warnings.warn(',
)
ERROR_TAIL_LINES = 12


def error_tail(path: pathlib.Path, lines: int = ERROR_TAIL_LINES) -> str:
  """The part of a replica's log that says why it failed: its last Python
  traceback's final lines if there is one, else its last lines without
  TF's warnings and deprecation notices."""
  try:
    text = path.read_text(errors='replace').splitlines()
  except OSError:
    return '(no log)'
  starts = [
    i for i, line in enumerate(text) if line.startswith('Traceback (most recent call last)')
  ]
  kept = [
    line
    for line in text[starts[-1] if starts else 0 :]
    if line.strip() and not any(n in line for n in _NOISE)
  ]
  # A traceback's error is at its end: keep its last frames and the message.
  return '\n'.join(kept[-lines:]) or '(nothing but warnings)'


def raise_on_sigterm() -> Callable[[], None]:
  """Turns SIGTERM into an exception while the cluster runs, so cleanup runs."""
  if threading.current_thread() is not threading.main_thread():
    return lambda: None

  def handler(signum, frame):
    raise TrainingError('the Trainer was terminated (SIGTERM); training replicas stopped')

  previous = signal.signal(signal.SIGTERM, handler)
  return lambda: signal.signal(signal.SIGTERM, previous)


def replica_command(python: str, *spec_args: str) -> list[str]:
  """How a replica process starts, here or in a pod: `spec_args` name its ReplicaSpec
  (`--spec FILE` or `--spec-json JSON`)."""
  return [python, '-m', 'components.replica', *spec_args]
