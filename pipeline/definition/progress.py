"""Progress of a local run, from the log lines of TFX's runners and the Estimator."""

import logging
import math
import re
import time
from collections.abc import Callable

from pipeline.record import CACHED, EXECUTED, FAILED

# ConcurrentDagRunner's lines, in LocalDagRunner's words; each is logged from
# the thread that runs the component.
RUNNING_LINE = 'Component %s is running.'
FINISHED_LINE = 'Component %s is finished.'
FAILED_LINE = 'Component %s failed.'


def started_component(record: logging.LogRecord) -> str | None:
  """The node id a LocalDagRunner or BeamDagRunner log line says starts, if any."""
  if record.msg in (RUNNING_LINE, 'node %s is running.'):
    return record.args[0]
  return None


class ComponentStarts(logging.Handler):
  """Calls `on_start(node id)` as each component starts (see `ComponentProgress`)."""

  def __init__(self, on_start: Callable[[str], None]):
    super().__init__(logging.INFO)
    self._on_start = on_start

  def emit(self, record):
    name = started_component(record)
    if name:
      self._on_start(name)


class ComponentProgress(logging.Handler):
  """Follows the runners' and the launcher's log lines to time each component.

  The runners have no callbacks; their per-component log lines are the only
  hook, and the pinned TFX version keeps them stable. Components may run
  side by side, each in its own thread, which logs its lines: a line is
  matched to the component running in the thread that logged it.
  """

  def __init__(
    self,
    on_finish: Callable[[str, str, float], None],
    on_start: Callable[[str], None] = lambda name: None,
  ):
    super().__init__(logging.INFO)
    self._on_finish = on_finish
    self._on_start = on_start
    self.timings = {}  # node id -> (state, seconds)
    self._running = {}  # thread id -> [node id, its start, its state]

  def emit(self, record):
    msg, started = record.msg, started_component(record)
    if started:
      self._running[record.thread] = [started, time.monotonic(), EXECUTED]
      self._on_start(started)
    elif msg == 'A cached execution %d is used.' and record.thread in self._running:
      self._running[record.thread][2] = CACHED
    elif msg in (FINISHED_LINE, 'node %s is finished.'):
      self._finish(record.thread)
    elif msg == FAILED_LINE:
      self._finish(record.thread, FAILED)

  def fail(self):
    """Every component still running failed (the run stopped under them)."""
    for thread in list(self._running):
      self._finish(thread, FAILED)

  def _finish(self, thread, state=None):
    if thread not in self._running:
      return
    name, started, ran = self._running.pop(thread)
    seconds = time.monotonic() - started
    self.timings[name] = (state or ran, seconds)
    self._on_finish(name, state or ran, seconds)


class TrainingProgress(logging.Handler):
  """Follows the Estimator's own progress lines ("loss = 0.31, step = 1200" and
  "global_step/sec: 95.2", logged by TensorFlow at INFO, by this process or
  forwarded from a local cluster's chief) and reports, at most every
  `every_s` seconds, the step out of `total_steps`, the loss, steps per second
  and the time left."""

  _LOSS = re.compile(r'loss = ([-+0-9.eE]+|nan|inf), step = (\d+)')
  _RATE = re.compile(r'global_step/sec: ([-+0-9.eE]+)')

  def __init__(self, total_steps: int, report: Callable[[str], None], every_s: float = 5.0):
    super().__init__(logging.INFO)
    self._total, self._report, self._every_s = total_steps, report, every_s
    self._rate = None
    self._last = -math.inf

  def emit(self, record):
    try:
      message = record.getMessage()
    except (TypeError, ValueError):
      return
    rate = self._RATE.search(message)
    if rate:
      self._rate = float(rate.group(1))
      return
    loss = self._LOSS.search(message)
    if not loss or time.monotonic() - self._last < self._every_s:
      return
    self._last = time.monotonic()
    step = int(loss.group(2))
    parts = [
      f'step {step}/{self._total} ({100 * step / max(self._total, 1):.0f}%)',
      f'loss {float(loss.group(1)):.4f}',
    ]
    if self._rate:
      parts.append(f'{self._rate:.1f} steps/s')
      parts.append(f'ETA {max(self._total - step, 0) / self._rate:.0f} s')
    self._report('  '.join(parts))
