"""Faults on a pipeline that has pushed a model: concurrent runs, a SIGKILLed
run, a damaged serving version and cached artifact, a damaged metadata store.

The tests share one output root and run in file order, after a first run
that pushes a model (a file of their own, so they run beside test_e2e.py).
Each checks the one line it prints, its exit code, that the serving model
is unchanged or replaced only by a whole one, and that a plain rerun recovers.
"""

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from components import serving
from pipeline.record import EXIT_LOCKED, EXIT_NOT_PUSHED, EXIT_NOTHING_NEW, EXIT_PUSHED
from tests.conftest import run_cli, start_cli, states

pytestmark = pytest.mark.e2e


def test_concurrent_runs_one_runs_the_other_is_refused(first_run, workspace):
  versions_before = serving.versions(str(workspace / 'out' / 'serving'))
  # A new gate: the Evaluator and the Pusher run (seconds of holding the
  # lock, after the import), on the cached upstream and model.
  first, second = (start_cli(workspace, 'evaluator.threshold=0.76') for _ in range(2))
  results = [(p, *p.communicate(timeout=900)) for p in (first, second)]
  refused = [r for r in results if r[0].returncode == EXIT_LOCKED]
  ran = [r for r in results if r[0].returncode != EXIT_LOCKED]
  assert len(refused) == 1 and len(ran) == 1, [(p.returncode, err) for p, _, err in results]
  _, out, _ = ran[0]
  run_id = out.split()[1]
  assert f'in use by run {run_id}' in refused[0][2]
  assert refused[0][2].strip().count('\n') == 0
  assert ran[0][0].returncode in (EXIT_PUSHED, EXIT_NOT_PUSHED), ran[0][2]
  assert len(serving.versions(str(workspace / 'out' / 'serving'))) <= len(versions_before) + 1


def test_a_killed_run_is_recorded_as_interrupted(first_run, workspace):
  from ml_metadata.proto import metadata_store_pb2

  from pipeline.service.mlmd import open_store

  versions_before = serving.versions(str(workspace / 'out' / 'serving'))
  # The upstream is cached; the Trainer has far to go when it is killed.
  process = start_cli(workspace, 'trainer.train_steps=20000')
  run_id = process.stdout.readline().split()[1]
  for line in process.stdout:
    if line.split()[:2] == ['Trainer', 'running']:
      break
  time.sleep(5)  # the Trainer is running
  process.send_signal(signal.SIGKILL)
  process.wait()
  record = workspace / 'out' / 'runs' / run_id / 'summary.json'
  assert json.loads(record.read_text())['status'] == 'running'  # what the dead run left
  # No process holds its lock: `runs` shows it interrupted before any run notices.
  runs = subprocess.run(
    [sys.executable, '-m', 'pipeline', 'runs', '--set', f'output_root={workspace / "out"}'],
    capture_output=True,
    text=True,
    cwd=workspace,
    check=True,
  )
  (line,) = [x for x in runs.stdout.splitlines() if x.startswith(run_id)]
  assert 'interrupted' in line
  # The killed Trainer's output folder, and a killed push's half-copied version.
  (partial,) = [
    f
    for f in (workspace / 'out' / 'pipeline' / 'Trainer' / 'model').iterdir()
    if not (f / 'Format-Serving').exists()
  ]
  staging = workspace / 'out' / 'serving' / '.incoming-killed' / 'variables'
  staging.mkdir(parents=True)
  rerun, summary = run_cli(workspace)  # the first run's data: all cached
  assert rerun.returncode == EXIT_NOTHING_NEW, rerun.stderr
  assert f'note: run {run_id} was interrupted' in rerun.stdout
  assert (
    'recorded as canceled' in rerun.stdout and 'partial output folder(s) removed' in rerun.stdout
  )
  assert not partial.exists() and not staging.parent.exists()
  assert 'half-copied version(s) of a killed push removed' in rerun.stdout
  killed = json.loads(record.read_text())
  assert killed['status'] == 'interrupted' and summary['run_id'] in killed['error']
  store = open_store(workspace / 'out' / 'metadata.sqlite')
  assert not [
    e for e in store.get_executions() if e.last_known_state == metadata_store_pb2.Execution.RUNNING
  ]
  assert serving.versions(str(workspace / 'out' / 'serving')) == versions_before


def test_damaged_version_and_partly_deleted_cache_are_passed_over(first_run, workspace):
  serving_dir = workspace / 'out' / 'serving'
  intact = serving.latest(str(serving_dir))
  fake = serving_dir / str(intact.version + 1000)
  shutil.copytree(intact.path, fake)
  (shard,) = (fake / 'variables').glob('variables.data-*')
  shard.unlink()  # the model no longer loads; its saved_model.pb still parses
  # A vocabulary deleted from the cached Transform graph: every file its
  # type must hold is still there; only its manifest tells.
  graphs = workspace / 'out' / 'pipeline' / 'Transform' / 'transform_graph'
  vocabularies = sorted(graphs.glob('*/transform_fn/assets/*'))
  assert vocabularies
  for vocabulary in vocabularies:
    vocabulary.unlink()
  process, summary = run_cli(workspace, 'evaluator.max_change=1.0')
  assert process.returncode == 0, process.stderr
  assert f'warning: serving version {fake.name} at {fake} is damaged' in process.stderr
  assert f'variables/{shard.name} is missing' in process.stderr
  # Moved aside, kept, recorded; never the one that serves.
  assert not fake.exists() and (serving_dir / '.damaged' / fake.name / 'saved_model.pb').exists()
  (moved,) = summary['damaged_versions']
  assert moved['moved_to'] == str(serving_dir / '.damaged' / fake.name)
  assert f'transform_fn/assets/{vocabularies[0].name} is missing' in process.stdout
  assert states(summary)['Transform'] == 'executed' and states(summary)['Trainer'] == 'executed'
  assert summary['gate']['serving'] is not None  # compared with the intact version
  assert summary['blessed'] is True and summary['pushed_path']
  assert summary['pushed_version'] > int(fake.name)


def test_a_damaged_metadata_store_is_set_aside_and_rebuilt(first_run, workspace):
  """Cut in half (a disk full mid-write): the next run names it, moves it aside
  with the artifacts it recorded, and runs every component again; nothing
  is lost (run records, serving versions) and the run after is answered
  from the cache as usual."""
  out = workspace / 'out'
  store_file = out / 'metadata.sqlite'
  store_file.write_bytes(store_file.read_bytes()[: store_file.stat().st_size // 2])
  runs_before = sorted(p.name for p in (out / 'runs').iterdir())
  versions_before = serving.versions(str(out / 'serving'))
  process, summary = run_cli(workspace, 'evaluator.max_change=1.0')
  assert process.returncode in (EXIT_PUSHED, EXIT_NOT_PUSHED), process.stderr
  assert f'note: the metadata store {store_file} is damaged' in process.stdout
  (aside,) = (out / 'damaged').iterdir()
  assert aside.name == summary['run_id']
  assert sorted(p.name for p in aside.iterdir()) == ['metadata.sqlite', 'pipeline']
  assert set(states(summary).values()) == {'executed'}
  # Warm-started from, and compared with, the model that serves: it is in the
  # serving directory, not in the store.
  assert summary['training']['warm_start_version'] == versions_before[-1]
  assert summary['gate']['serving'] is not None
  assert set(runs_before) < {p.name for p in (out / 'runs').iterdir()}
  assert serving.versions(str(out / 'serving'))[: len(versions_before)] == versions_before
  rebuilt = summary['run_id']
  again, summary = run_cli(workspace, 'evaluator.max_change=1.0')
  assert again.returncode == EXIT_NOTHING_NEW, again.stderr
  assert summary['unchanged_since'] == rebuilt
