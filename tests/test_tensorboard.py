"""`python -m pipeline tensorboard`: every run that trained, named by its run id, served."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

from pipeline.config import load_config
from pipeline.record import RunSummary
from pipeline.service import history
from pipeline.views import tensorboard


def _record(config, run_id, state, model_run):
  history.write_summary(
    config,
    RunSummary(
      run_id=run_id,
      status='succeeded',
      components=[{'name': 'Trainer', 'state': state}],
      artifacts={'model_run': str(model_run)},
    ),
  )


def _events(folder):
  import tensorflow as tf

  with tf.summary.create_file_writer(str(folder)).as_default():
    for step in range(3):
      tf.summary.scalar('loss', 1.0 / (step + 1), step=step)


def test_runs_that_trained_are_linked_by_run_id(tmp_path):
  config = load_config(overrides=[f'output_root={tmp_path}'])
  trained = tmp_path / 'pipeline' / 'Trainer' / 'model_run' / '6'
  trained.mkdir(parents=True)
  _record(config, '20261207T010000-aaaa', 'executed', trained)
  _record(config, '20261207T020000-bbbb', 'cached', trained)  # no curves of its own
  _record(config, '20261207T030000-cccc', 'executed', tmp_path / 'gone')
  folder = tensorboard.logdir(config)
  assert [p.name for p in folder.iterdir()] == ['20261207T010000-aaaa']
  assert (folder / '20261207T010000-aaaa').resolve() == trained.resolve()
  assert tensorboard.logdir(config) == folder  # remade, not added to


def test_tensorboard_serves_the_runs_by_run_id(tmp_path):
  """Started as a user would, and asked over loopback which runs it has."""
  config = load_config(overrides=[f'output_root={tmp_path}'])
  model_run = tmp_path / 'pipeline' / 'Trainer' / 'model_run' / '6'
  _events(model_run)
  _record(config, '20261207T010000-aaaa', 'executed', model_run)
  with socket.socket() as probe:
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
  server = subprocess.Popen(
    [
      sys.executable,
      '-m',
      'pipeline',
      'tensorboard',
      '--host',
      '127.0.0.1',
      '--port',
      str(port),
      '--set',
      f'output_root={tmp_path}',
    ],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  try:
    assert server.stdout.readline().startswith('tensorboard: 1 training run(s)')
    runs, deadline = None, time.monotonic() + 120
    while time.monotonic() < deadline and not runs:
      assert server.poll() is None, server.stderr.read()
      try:
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/data/runs', timeout=5) as answer:
          runs = json.loads(answer.read())
      except OSError:
        time.sleep(1)
    assert runs == ['20261207T010000-aaaa']
  finally:
    server.kill()
    server.wait()
