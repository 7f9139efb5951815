"""The console: where library logs go, how an error reads, and a run's lines."""

import contextlib
import os
import pathlib
import sys
import threading
import time

from components import ids
from pipeline.record import EXECUTED, FAILED, Outcome, RunSummary

# The console's line for the pre-run checks (config, data files, the user's
# module, which imports TensorFlow: the longest silence otherwise).
CHECKS = 'checks'
# A component's "running" line appears once it has run this long.
RUNNING_AFTER_S = 1.0
# The longest the console stays silent while a component runs.
HEARTBEAT_S = 10.0


@contextlib.contextmanager
def logs_to(path: pathlib.Path):
  """Sends everything written to stderr (Python, absl, TF's C++ logs) to `path`.

  Yields a writable stream to the original stderr, for our own errors.
  """
  path.parent.mkdir(parents=True, exist_ok=True)
  sys.stderr.flush()
  saved = os.dup(2)
  with (
    open(path, 'a', buffering=1) as log,
    os.fdopen(os.dup(saved), 'w', buffering=1) as console_err,
  ):
    os.dup2(log.fileno(), 2)
    try:
      yield console_err
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)


def describe(error: BaseException) -> str:
  text = str(error).strip() or error.__class__.__name__
  return (
    text
    if isinstance(error, (ValueError, RuntimeError, OSError))
    else (f'{error.__class__.__name__}: {text}')
  )


# The summary and the console keep this much of an error; the log has all of it.
MAX_ERROR_LINES, MAX_ERROR_CHARS = 16, 2000


def short(text: str) -> str:
  """`text` cut to MAX_ERROR_LINES lines and MAX_ERROR_CHARS characters."""
  lines = text.splitlines()
  if len(lines) > MAX_ERROR_LINES:
    lines = [*lines[:1], '...', *lines[-(MAX_ERROR_LINES - 2) :]]
  text = '\n'.join(lines)
  return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 4] + ' ...'


def _wrapped(error: BaseException) -> BaseException | None:
  """The error `error` was raised from, or during; none after `raise ... from None`."""
  if error.__cause__ is not None:
    return error.__cause__
  return None if error.__suppress_context__ else error.__context__


def error_text(error: BaseException) -> str:
  """What went wrong, for a person: the error's own message, or, when it wraps
  another (Beam and TFMA re-raise with their own context, e.g. TFMA's
  `add_input failed on "<...Combiner object at 0x...>"`), the root cause's."""
  if isinstance(error, KeyboardInterrupt):
    return 'interrupted'
  root, seen = error, {id(error)}
  while (below := _wrapped(root)) is not None and id(below) not in seen:
    root = below
    seen.add(id(root))
  if root is error:
    return describe(error)
  root_text = f'{root.__class__.__name__}: {str(root).strip()}'
  return f'{root_text} (raised as: {describe(error).splitlines()[0][:200]})'


class RunConsole:
  """A run's lines on the console: notes, one line per component (a
  "running" line first only if it takes a while), training progress, and
  while a component runs with nothing else to say, a line every
  HEARTBEAT_S seconds, so the console is never silent for long."""

  def __init__(self, err):
    self.err = err  # the console's stderr, while stderr goes to the run's log
    self.started = time.monotonic()
    self._lock = threading.Lock()
    self._running = {}  # component -> (its start, the timer of its "running" line)
    self._last_line = self.started
    self._heartbeat = None

  def note(self, text: str):
    self._say(f'note: {text}')

  def warning(self, text: str):
    print(f'warning: {text}', file=self.err, flush=True)

  def start(self, name: str):
    line = f'  {name:<26} {"running":<9} {"":7}     (elapsed {self._elapsed():6.1f} s)'
    timer = threading.Timer(RUNNING_AFTER_S, self._say, [line])
    timer.daemon = True
    with self._lock:
      self._running[name] = (time.monotonic(), timer)
    timer.start()
    if self._heartbeat is None:
      self._heartbeat = threading.Thread(target=self._beat, daemon=True)
      self._heartbeat.start()

  def finish(self, name: str, state: str, seconds: float):
    with self._lock:
      _, timer = self._running.pop(name, (None, None))
    if timer:
      timer.cancel()
    self._say(f'  {name:<26} {state:<9} {seconds:7.1f} s   (elapsed {self._elapsed():6.1f} s)')

  def training(self, line: str):
    self._say(f'    {line}')

  def _say(self, line: str):
    with self._lock:
      print(line, flush=True)
      self._last_line = time.monotonic()

  def _beat(self):
    while True:
      time.sleep(1.0)
      with self._lock:
        now = time.monotonic()
        if self._running and now - self._last_line >= HEARTBEAT_S:
          name, (since, _) = next(reversed(self._running.items()))
          print(f'    {name} still running ({now - since:.0f} s)', flush=True)
          self._last_line = now

  def _elapsed(self) -> float:
    return time.monotonic() - self.started


def print_summary(summary: RunSummary, path, console_err):
  """The run's last lines: what it measured, decided and pushed, and what to do next."""
  sys.stdout.flush()
  outcome = Outcome(summary.outcome)
  if summary.status == FAILED:
    first, *rest = (summary.error or '').splitlines() or ['']
    print(f'error: {first}', file=console_err)
    for line in rest:
      print(f'  {line}', file=console_err)
    print(f'  (the whole log: {summary.log_file})', file=console_err)
  cached = outcome is Outcome.NOTHING_NEW
  if summary.metrics:
    shown = ', '.join(
      f'{k} {v:.4f}' if isinstance(v, float) else f'{k} {v}' for k, v in summary.metrics.items()
    )
    # A fully cached run's evaluation is an earlier run's, against the model
    # that served then: shown as such, with no decision of its own.
    print(f'eval metrics{" (cached, from an earlier run)" if cached else ""}: {shown}')
  trained = any(c.name == ids.TRAINER and c.state == EXECUTED for c in summary.components)
  if trained and summary.training and summary.training.warm_start:
    print(f'trained: {summary.training.warm_start}')  # warm-started from which version, or why not
  gate = summary.gate
  if gate and gate.candidate is not None and not cached:
    serving = f'{gate.serving:.4f}' if gate.serving is not None else 'no model serving'
    print(f'gate: {gate.metric} {gate.candidate:.4f} (serving: {serving})')
  if summary.blessing_reason and not cached:
    print(f'blessed: {"yes" if summary.blessed else "no"} ({summary.blessing_reason})')
  if summary.pushed_path:
    print(f'pushed: {summary.pushed_path}')
  elif summary.not_pushed_reason:
    print(f'pushed: nothing ({summary.not_pushed_reason})')
  else:
    print('pushed: nothing')
  if summary.serving_path:
    print(f'serving: {summary.serving_path}')
  if summary.report:
    print(f'report: {summary.report}')
  print(
    f'{summary.status} in {summary.wall_seconds:.1f} s: {outcome.text} '
    f'(exit {outcome.exit_code}); summary: {path}',
    flush=True,
  )
  if outcome.next_step:
    print(f'next: {outcome.next_step}', flush=True)
