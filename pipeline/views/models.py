"""The serving directory's versions, and rolling back to one of them.

A rollback republishes an intact older version as a new, highest version,
so TF Serving's "highest version serves" stays true, the next run compares
against it (it is the Evaluator's baseline and the Trainer's warm start),
and nothing is ever deleted. It holds the same locks as a run.
"""

import datetime
import os
import pathlib
import secrets
import time

from components import serving
from pipeline.config import Config
from pipeline.record import SUCCEEDED, Outcome, RunSummary
from pipeline.service import history, runlock

# Push-record key of a republished version: the version it is a copy of.
ROLLBACK_OF = 'rollback_of'


def list_models(config: Config) -> list[dict]:
  """Every version in the serving directory, newest first, with the run that
  pushed it, its gated metric and spans (from that run's record) and whether
  it serves."""
  push_dir = config.push_dir
  current = serving.latest(push_dir)
  runs = {r.run_id: r for r in history.load_runs(config)}
  found = [
    (version, path, serving.version_problem(path))
    for version in serving.versions(push_dir)
    for path in [os.path.join(push_dir, str(version))]
  ]
  found += [
    (version, path, f'{problem}; moved aside to {path}')
    for version, path, problem in serving.set_aside_versions(push_dir)
  ]
  rows = []
  for version, path, problem in sorted(found, reverse=True):
    record = serving.push_record(path)
    run = runs.get(record.get('pipeline_run_id') or '')
    gate = run.gate if run else None
    rows.append(
      {
        'version': version,
        'serving': bool(current and current.version == version),
        'damaged': problem,
        'pushed_at': record.get('pushed_at'),
        'run_id': record.get('pipeline_run_id'),
        'metric': gate.metric if gate else None,
        'value': gate.candidate if gate else None,
        'spans': run.spans.dict() if run and run.spans else None,
        ROLLBACK_OF: record.get(ROLLBACK_OF),
      }
    )
  by_version = {row['version']: row for row in rows}
  for row in rows:  # a rollback's copy has its original's metric and spans
    source = by_version.get(row[ROLLBACK_OF])
    if source:
      row.update({key: source[key] for key in ('metric', 'value', 'spans')})
  return rows


def rollback(config: Config, version: int | None = None) -> RunSummary:
  """Makes `version` (default: the intact version before the serving one) serve.

  Returns the rollback's record, also written to the run history.
  Raises ValueError (nothing serves, no older intact version, or `version`
  is missing or damaged) or runlock.LockedError (a run is in progress).
  """
  push_dir = config.push_dir
  run_id = datetime.datetime.now().strftime('%Y%m%dT%H%M%S-') + secrets.token_hex(2)
  locked = {'output root': config.output_root, 'serving directory': pathlib.Path(push_dir)}
  with runlock.hold(run_id, locked, config.run_lock_wait_s):
    serving.set_aside(push_dir)
    serving.remove_staging(push_dir)
    current = serving.latest(push_dir)
    if current is None:
      raise ValueError(f'no model serves from {push_dir}: nothing to roll back')
    if version is None:
      version = _previous_intact(push_dir, current.version)
    if version == current.version:
      raise ValueError(f'version {version} already serves')
    started = time.monotonic()
    republished = serving.republish(
      push_dir,
      version,
      current.version,
      {ROLLBACK_OF: version, 'pipeline_run_id': run_id, 'replaced_version': current.version},
    )
    record = RunSummary(
      run_id=run_id,
      kind='rollback',
      status=SUCCEEDED,
      outcome=Outcome.ROLLBACK,
      rolled_back_to=version,
      replaced_version=current.version,
      pushed_version=republished.version,
      pushed_path=republished.path,
      serving_path=republished.path,
      wall_seconds=round(time.monotonic() - started, 2),
    )
    history.write_summary(config, record)
    return record


def _previous_intact(push_dir: str, serving_version: int) -> int:
  for candidate in reversed([v for v in serving.versions(push_dir) if v < serving_version]):
    if serving.version_problem(os.path.join(push_dir, str(candidate))) is None:
      return candidate
  raise ValueError(f'no intact version older than {serving_version} in {push_dir}')
