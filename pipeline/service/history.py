"""Run records: a run is recorded as `running` when it starts, and a run that
died mid-way (killed, machine down) is recorded as `interrupted` by the next
one, with the ML Metadata executions it left RUNNING marked CANCELED.

Only called while holding the output root's run lock (`pipeline.service.runlock`):
any record still `running` then belongs to a process that is gone.
"""

import json
import os
import pathlib
import shutil
import time

import pydantic

from pipeline.config import Config
from pipeline.record import INTERRUPTED, RUNNING, UNREADABLE, RunSummary
from pipeline.service import mlmd, runlock

SUMMARY = 'summary.json'
LATEST = 'latest_summary.json'


def _write(path: pathlib.Path, summary: RunSummary) -> None:
  temporary = path.parent / f'.{path.name}.tmp'
  temporary.write_text(summary.to_json() + '\n')
  os.replace(temporary, path)  # never a half-written record


def write_summary(config: Config, summary: RunSummary) -> pathlib.Path:
  """Writes `summary` as its run's record and as the latest one; returns the record's path."""
  run_dir = config.runs_dir / summary.run_id
  run_dir.mkdir(parents=True, exist_ok=True)
  path = run_dir / SUMMARY
  _write(path, summary)
  _write(config.output_root / LATEST, summary)
  return path


def start(config: Config, run_id: str, runner: str, log_file: pathlib.Path) -> None:
  """Records run `run_id` as running (until its final summary replaces the record)."""
  write_summary(
    config,
    RunSummary(
      run_id=run_id,
      status=RUNNING,
      pid=os.getpid(),
      started_at=time.strftime('%Y-%m-%dT%H:%M:%S'),
      runner=runner,
      log_file=str(log_file),
    ),
  )


def recover(config: Config, run_id: str) -> list[str]:
  """Marks runs that died mid-way as interrupted, and their RUNNING MLMD
  executions as CANCELED. Returns one line per repaired record."""
  notes = []
  latest_path = config.output_root / LATEST
  for path in sorted(config.runs_dir.glob(f'*/{SUMMARY}')) if config.runs_dir.is_dir() else []:
    summary = read_record(path)
    if summary.status != RUNNING or summary.run_id == run_id:
      continue
    summary.status = INTERRUPTED
    summary.error = (
      'the run stopped before it finished (its process was killed, or the machine went '
      f'down); noticed by run {run_id}'
    )
    _write(path, summary)
    if latest_path.exists() and read_record(latest_path).run_id == summary.run_id:
      _write(latest_path, summary)
    notes.append(f'run {summary.run_id} was interrupted; recorded as interrupted')
  canceled, ids = _cancel_running_executions(config)
  if canceled:
    removed = _remove_partial_outputs(config.pipeline_root, ids)
    notes.append(
      f'{len(canceled)} component execution(s) left running by a dead run '
      f'({", ".join(canceled)}) recorded as canceled'
      + (f'; {len(removed)} partial output folder(s) removed' if removed else '')
    )
  return notes


def _remove_partial_outputs(pipeline_root: pathlib.Path, execution_ids: set[int]) -> list[str]:
  """Removes what executions that never finished wrote: TFX names each
  output folder (and its own working folders) by the execution's id,
  `<root>/<node>/<output>/<id>` and `<root>/<node>/.system/<kind>/<id>`.
  Nothing in them was published, so nothing refers to them."""
  removed = []
  if not pipeline_root.is_dir():
    return removed
  for pattern in ('*/*/*', '*/.system/*/*'):
    for folder in pipeline_root.glob(pattern):
      if folder.name.isdigit() and int(folder.name) in execution_ids and folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(str(folder))
  return removed


def _cancel_running_executions(config: Config) -> tuple[list[str], set[int]]:
  """(the nodes, the execution ids) of executions left RUNNING, now CANCELED."""
  if not config.metadata_path.exists():
    return [], set()
  store = mlmd.open_store(config.metadata_path)
  canceled = mlmd.cancel_running_executions(store, 'its run died while it ran')
  names = {name for execution_id, nodes in canceled for name in nodes or [str(execution_id)]}
  return sorted(names), {execution_id for execution_id, _ in canceled}


def read_record(path: pathlib.Path) -> RunSummary:
  """The run record at `path`; if it is not one (unreadable, truncated, not an
  object, a field of the wrong type), a stand-in with status `unreadable`
  that names the file, so no reader of the history crashes on it. Keys an
  older or newer version wrote that this one does not know are left out."""
  try:
    data = json.loads(path.read_bytes())
    if not isinstance(data, dict):
      raise ValueError(f'a JSON {type(data).__name__}, not a run record')
    return RunSummary.parse_obj({k: v for k, v in data.items() if k in RunSummary.__fields__})
  except pydantic.ValidationError as e:
    errors = e.errors()
    problem = 'not a run record: ' + ', '.join(
      f'{".".join(map(str, error["loc"]))}: {error["msg"]}' for error in errors[:3]
    )
    if len(errors) > 3:
      problem += f' (and {len(errors) - 3} more)'
  except (OSError, ValueError) as e:
    problem = f'{e.__class__.__name__}: {e}'.splitlines()[0][:200]
  return RunSummary(
    run_id=path.parent.name, status=UNREADABLE, error=f'{path}: {problem}', summary_file=str(path)
  )


def load_runs(config: Config) -> list[RunSummary]:
  """Every run record in this output root, newest first (see `read_record`)."""
  paths = config.runs_dir.glob(f'*/{SUMMARY}') if config.runs_dir.is_dir() else []
  records = [read_record(path) for path in paths]
  if any(r.status == RUNNING for r in records) and not runlock.held(config.output_root):
    # A running run holds the output root's lock until its process ends:
    # without it, the run is gone (the next run writes this into its record).
    for r in records:
      if r.status == RUNNING:
        r.status = INTERRUPTED
        r.error = 'its process is gone; it stopped before it finished'
  return sorted(records, key=lambda r: r.run_id, reverse=True)


def load_run(config: Config, run_id: str) -> RunSummary:
  """The record of run `run_id` (a unique prefix will do); ValueError if there is none."""
  matches = [r for r in load_runs(config) if r.run_id.startswith(run_id)]
  exact = [r for r in matches if r.run_id == run_id]
  if exact or len(matches) == 1:
    return (exact or matches)[0]
  if not matches:
    raise ValueError(f'no run {run_id!r} in {config.runs_dir}')
  raise ValueError(
    f'{run_id!r} names {len(matches)} runs: ' + ', '.join(r.run_id for r in matches[:5])
  )
