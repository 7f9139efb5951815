"""One run at a time: the run lock, and the records of runs that died."""

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pipeline.config import load_config
from pipeline.record import RunSummary
from pipeline.service import history, runlock


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
  with (
    runlock.hold('run-a', {'output root': tmp_path / 'out'}),
    pytest.raises(runlock.LockedError, match=r'output root .*out is in use by run run-a \(pid'),
    runlock.hold('run-b', {'output root': tmp_path / 'out'}),
  ):
    pass
  with runlock.hold('run-c', {'output root': tmp_path / 'out'}):
    pass  # released when the first run ended


def test_a_waiting_run_gets_the_lock_when_it_is_released(tmp_path):
  holder = _hold_in_child(tmp_path / 'out', seconds=1.5)
  started = time.monotonic()
  with runlock.hold('run-b', {'output root': tmp_path / 'out'}, wait_s=30):
    assert time.monotonic() - started > 0.5
  holder.wait(10)


def test_a_sigkilled_holder_releases_the_lock(tmp_path):
  holder = _hold_in_child(tmp_path / 'out', seconds=600)
  with (
    pytest.raises(runlock.LockedError, match='run child'),
    runlock.hold('run-b', {'output root': tmp_path / 'out'}),
  ):
    pass
  holder.send_signal(signal.SIGKILL)
  holder.wait(10)
  with runlock.hold('run-b', {'output root': tmp_path / 'out'}):
    pass


def _hold_in_child(directory, seconds):
  code = textwrap.dedent(f"""
      import pathlib, sys, time
      from pipeline.service import runlock
      with runlock.hold('child', {{'output root': pathlib.Path({str(directory)!r})}}):
        print('held', flush=True)
        time.sleep({seconds})
  """)
  child = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True)
  assert child.stdout.readline().strip() == 'held'
  return child


def test_runs_that_died_are_recorded_as_interrupted(tmp_path):
  config = load_config(overrides=[f'output_root={tmp_path}'])
  history.start(config, 'old-run', 'local', tmp_path / 'log')
  done = RunSummary(run_id='done-run', status='succeeded')
  history.write_summary(config, done)
  history.start(config, 'dead-run', 'local', tmp_path / 'log')
  notes = history.recover(config, 'new-run')
  assert len(notes) == 2 and all('interrupted' in n for n in notes)
  for run_id in ('old-run', 'dead-run'):
    record = json.loads((config.runs_dir / run_id / 'summary.json').read_text())
    assert record['status'] == 'interrupted' and 'new-run' in record['error']
  assert history.read_record(config.runs_dir / 'done-run' / 'summary.json') == done
  latest = json.loads((tmp_path / 'latest_summary.json').read_text())
  assert (latest['run_id'], latest['status']) == ('dead-run', 'interrupted')
  assert history.recover(config, 'next-run') == []


def test_executions_left_running_are_marked_canceled(tmp_path):
  from ml_metadata.proto import metadata_store_pb2

  from pipeline.service.mlmd import open_store

  config = load_config(overrides=[f'output_root={tmp_path}'])
  store = open_store(config.metadata_path)
  execution_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name='Trainer'))
  running = metadata_store_pb2.Execution(
    type_id=execution_type, last_known_state=metadata_store_pb2.Execution.RUNNING
  )
  done = metadata_store_pb2.Execution(
    type_id=execution_type, last_known_state=metadata_store_pb2.Execution.COMPLETE
  )
  running_id, done_id = store.put_executions([running, done])
  # What each wrote: the killed one's folders go, the finished one's stay.
  root = config.pipeline_root / 'Trainer'
  partial = [
    root / 'model' / str(running_id),
    root / '.system' / 'executor_execution' / str(running_id),
  ]
  whole = [root / 'model' / str(done_id), root / '.system' / 'executor_execution' / str(done_id)]
  for folder in partial + whole:
    (folder / 'sub').mkdir(parents=True)
  context_type = store.put_context_type(metadata_store_pb2.ContextType(name='node'))
  (context_id,) = store.put_contexts(
    [metadata_store_pb2.Context(type_id=context_type, name='my-pipeline.Trainer')]
  )
  store.put_attributions_and_associations(
    [], [metadata_store_pb2.Association(execution_id=running_id, context_id=context_id)]
  )
  notes = history.recover(config, 'new-run')
  assert notes == [
    (
      '1 component execution(s) left running by a dead run (Trainer) recorded as canceled; '
      '2 partial output folder(s) removed'
    )
  ]
  assert [f.exists() for f in partial + whole] == [False, False, True, True]
  states = {e.id: e.last_known_state for e in store.get_executions()}
  assert states == {
    running_id: metadata_store_pb2.Execution.CANCELED,
    done_id: metadata_store_pb2.Execution.COMPLETE,
  }


def test_runs_shows_a_run_whose_process_is_gone_as_interrupted(tmp_path):
  """A running run holds the output root's lock; a record that says running
  without anyone holding it belongs to a run that died."""
  config = load_config(overrides=[f'output_root={tmp_path}'])
  history.start(config, 'dead-run', 'local', tmp_path / 'log')
  with runlock.hold('live-run', {'output root': tmp_path}):
    assert runlock.held(tmp_path)
    assert history.load_runs(config)[0].status == 'running'
  assert not runlock.held(tmp_path)
  (record,) = history.load_runs(config)
  assert record.status == 'interrupted' and 'process is gone' in record.error
  # Only shown so: the record is the next run's to rewrite.
  assert json.loads((config.runs_dir / 'dead-run' / 'summary.json').read_text())['status'] == (
    'running'
  )


def test_a_run_refused_while_the_holder_writes_its_name_still_names_it(tmp_path):
  """Two runs started together: the loser may look in the instant between the
  winner taking the lock and writing who it is."""
  import fcntl
  import os
  import threading

  path = tmp_path / runlock.LOCK_FILE
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  fcntl.flock(fd, fcntl.LOCK_EX)  # taken, not yet named
  info = json.dumps({'run_id': 'winner', 'pid': 1, 'host': 'h', 'started': 't'})
  threading.Timer(0.3, os.pwrite, [fd, info.encode(), 0]).start()
  try:
    with (
      pytest.raises(runlock.LockedError, match='in use by run winner'),
      runlock.hold('loser', {'output root': tmp_path}),
    ):
      pass
  finally:
    os.close(fd)
