"""One run, start to end: lock, checks and repairs, the pipeline, its record and report.

`run` returns the run's summary; the console (`pipeline.console.RunConsole`)
hears its progress.
"""

import datetime
import logging
import os
import pathlib
import secrets
import shutil
import time
from collections.abc import Callable

import pydantic

from components import ids
from components.csv_check import DataError
from pipeline.config import Config, ConfigError, to_dict
from pipeline.console import CHECKS, RunConsole, error_text, logs_to, print_summary, short
from pipeline.record import EXECUTED, FAILED, SUCCEEDED, Outcome, RunSummary
from pipeline.service import history, runlock, unchanged

# Writes a run's report: (summary, config, every run record) -> its path.
Report = Callable[[RunSummary, Config, list[RunSummary]], pathlib.Path]


def run(config, console_err, runner: str = 'local', report: Report | None = None) -> RunSummary:
  """Runs the pipeline for `config`, printing progress; returns the summary.

  `report(summary, config, runs)` writes the run's report (the operator's
  views are not the run service's to know); it returns the report's path.

  Raises:
    LockedError: another run holds this output root or serving directory.
    ConfigError: the config does not fit the schema or the module (nothing ran).
  """
  run_id = datetime.datetime.now().strftime('%Y%m%dT%H%M%S-') + secrets.token_hex(2)
  locked = {'output root': config.output_root, 'serving directory': pathlib.Path(config.push_dir)}
  with runlock.hold(run_id, locked, config.run_lock_wait_s):
    return _run_locked(config, run_id, RunConsole(console_err), runner, report)


def _run_locked(config, run_id, console: RunConsole, runner, report) -> RunSummary:
  log_file = config.runs_dir / run_id / 'pipeline.log'
  print(f'run {run_id} ({runner} runner): logs in {log_file}', flush=True)
  previous = unchanged.last_if_unchanged(config, runner, history.load_runs(config))
  if previous is not None:
    return _answer_unchanged(config, run_id, runner, previous, console, report)
  console_err = console.err
  with logs_to(log_file) as err:
    console.err = err  # while stderr goes to the log
    console.start(CHECKS)
    checks_started = time.monotonic()
    damaged = _repair(config, run_id, console)
    status, error, refused, inputs, progress = _checks(
      config, run_id, runner, console, checks_started
    )
    if status != FAILED:
      history.start(config, run_id, runner, log_file)
      status, error, refused, progress = _run_pipeline(config, run_id, runner, console)
    from pipeline.service import collect

    collected = collect.collect(config, run_id, progress.timings if progress else {})
    summary = record(
      run_id=run_id,
      status=status,
      outcome=outcome(status, collected, refused),
      error=error,
      **collected,
      damaged_versions=damaged,
      runner=runner,
      wall_seconds=round(time.monotonic() - console.started, 2),
      log_file=str(log_file),
      config=to_dict(config),
    )
    if inputs and status == SUCCEEDED and summary.outcome in unchanged.DECIDED:
      summary.inputs = {**inputs, **unchanged.ended(config)}
    summary.report = _report(config, summary, report)
  console.err = console_err
  return _record(config, summary, console)


# What a run's record keeps if the rest of what it collected does not fit the
# record: the decision and where things are.
_ESSENTIAL = (
  'run_id',
  'status',
  'outcome',
  'error',
  'components',
  'blessed',
  'blessing_reason',
  'pushed_path',
  'pushed_version',
  'not_pushed_reason',
  'serving_path',
  'runner',
  'wall_seconds',
  'log_file',
)


def record(**fields) -> RunSummary:
  """The run's record from what it collected. What does not fit the record
  (a component that wrote a field this version does not know) is left out
  and named in `error`, never lost with the whole record after a push."""
  try:
    return RunSummary(**fields)
  except pydantic.ValidationError as e:
    logging.getLogger(__name__).exception('run %s: its record left fields out', fields['run_id'])
    first = e.errors()[0]
    note = (
      f'the run record left out what it could not read: {".".join(map(str, first["loc"]))}: '
      f'{first["msg"]}'
    )
    kept = {key: fields.get(key) for key in _ESSENTIAL if fields.get(key) is not None}
    kept['error'] = f'{kept["error"]}; {note}' if kept.get('error') else note
    return RunSummary(**kept)


def _repair(config, run_id, console: RunConsole) -> list[dict]:
  """A damaged metadata store, records that died with their process, damaged
  serving versions and a killed push's leftovers, before anything relies on
  them; returns the damaged versions set aside."""
  from components import serving
  from pipeline.service import store

  note = store.set_aside_if_damaged(config.metadata_path, config.pipeline_root, run_id)
  if note:
    console.note(note)
  for note in history.recover(config, run_id):
    console.note(note)
  damaged = [
    {'version': v, 'path': os.path.join(config.push_dir, str(v)), 'moved_to': to, 'problem': why}
    for v, to, why in serving.set_aside(config.push_dir)
  ]
  for version in damaged:
    console.warning(
      f'serving version {version["version"]} at {version["path"]} is damaged '
      f'({version["problem"]}); moved aside to {version["moved_to"]}'
    )
  staged = serving.remove_staging(config.push_dir)
  if staged:
    console.note(f'{len(staged)} half-copied version(s) of a killed push removed')
  return damaged


def _checks(config, run_id, runner, console: RunConsole, started: float):
  """The pre-run checks, before any component runs (the user's module imports
  TensorFlow: its start-up messages go to the log). Returns (status, error,
  refused, the inputs the unchanged-rerun answer compares, no progress yet)."""
  from pipeline.definition import usercode
  from pipeline.service import checks

  try:
    checks.preflight(config)
  except ConfigError:
    console.finish(CHECKS, FAILED, time.monotonic() - started)
    logging.getLogger(__name__).exception('run %s refused', run_id)
    shutil.rmtree(config.runs_dir / run_id, ignore_errors=True)
    raise  # a mistake in the config or the module: nothing ran
  except (Exception, KeyboardInterrupt) as e:
    console.finish(CHECKS, FAILED, time.monotonic() - started)
    return FAILED, error_text(e), isinstance(e, DataError), None, None
  console.finish(CHECKS, 'passed', time.monotonic() - started)
  inputs = unchanged.started(config, runner, usercode.source_files(config.module))
  return SUCCEEDED, None, False, inputs, None


def _run_pipeline(config, run_id, runner, console: RunConsole):
  """Runs every component; returns (status, error, refused, progress)."""
  from absl import logging as absl_logging

  from pipeline.definition import runners
  from pipeline.definition.progress import ComponentProgress, TrainingProgress
  from pipeline.service import cache_check

  status, error, refused, progress = SUCCEEDED, None, False, None
  try:
    for note in cache_check.invalidate_incomplete(config.metadata_path, config.file_lists_dir):
      console.note(note)
    absl_logging.set_verbosity(absl_logging.INFO)
    progress = ComponentProgress(console.finish, console.start)
    training = TrainingProgress(config.trainer.train_steps, console.training)
    runners.run(config, run_id, progress, runner, training)
  except (Exception, KeyboardInterrupt) as e:  # reported in the summary, not re-raised
    status, error, refused = FAILED, short(error_text(e)), isinstance(e, DataError)
    # The runner raised the error of the failed component first in ids.ALL.
    failed = sorted(
      (
        name
        for name, (state, _) in (progress.timings if progress else {}).items()
        if state == FAILED
      ),
      key=lambda name: ids.ALL.index(name) if name in ids.ALL else len(ids.ALL),
    )
    if failed:
      error = f'{failed[0]} failed: {error}'
    logging.getLogger(__name__).exception('run %s failed', run_id)
  try:
    # What this run made (even if it failed later) is whole: recorded so
    # the next run can tell if it is still.
    cache_check.record_file_lists(config.metadata_path, config.file_lists_dir)
  except Exception:  # a cache left unrecorded is checked by its type instead
    logging.getLogger(__name__).exception('run %s: file lists not recorded', run_id)
  return status, error, refused, progress


def _report(config, summary: RunSummary, report: Report | None) -> str | None:
  """Writes the run's report; None if there is none, or it cannot be drawn."""
  if report is None:
    return None
  try:
    return str(report(summary, config, history.load_runs(config)))
  except Exception:  # a report that cannot be drawn must not change the run's outcome
    logging.getLogger(__name__).exception('run %s: the report could not be written', summary.run_id)
    return None


def _record(config, summary: RunSummary, console: RunConsole) -> RunSummary:
  path = history.write_summary(config, summary)
  print_summary(summary, path, console.err)
  return summary


def _answer_unchanged(
  config, run_id, runner, previous: RunSummary, console: RunConsole, report
) -> RunSummary:
  """A run with nothing new since run `previous`, answered from its record (see `unchanged`)."""
  note = (
    f'nothing changed since run {previous.run_id} (data, code, config, schema, installed '
    'stack, serving models): every component is cached'
  )
  console.note(note)
  summary = unchanged.answer(previous, run_id)
  for component in summary.components:
    console.finish(component.name, component.state, component.seconds)
  run_dir = config.runs_dir / run_id
  run_dir.mkdir(parents=True, exist_ok=True)
  log_file = run_dir / 'pipeline.log'
  log_file.write_text(f'run {run_id}: {note}; answered from its record, nothing ran.\n')
  summary.runner, summary.log_file, summary.config = runner, str(log_file), to_dict(config)
  summary.report = _report(config, summary, report)
  summary.wall_seconds = round(time.monotonic() - console.started, 2)
  return _record(config, summary, console)


def outcome(status: str, collected: dict, refused: bool = False) -> Outcome:
  """What the run did, from its status and `collect.collect`'s summary;
  `refused`: a DataError (a malformed CSV file) stopped it."""
  states = {c['name']: c['state'] for c in collected['components']}
  if status != SUCCEEDED:
    refused = refused or states.get(ids.EXAMPLE_VALIDATOR) == FAILED
    return Outcome.DATA_REFUSED if refused else Outcome.FAILED
  if collected['pushed_path']:
    return Outcome.PUSHED
  # A new evaluation (of a new model, or of a cached one under a changed
  # gate) that pushed nothing kept the serving model: a decision, not a no-op.
  decided = EXECUTED in (states.get(ids.TRAINER), states.get(ids.EVALUATOR))
  return Outcome.NOT_PUSHED if decided else Outcome.NOTHING_NEW
