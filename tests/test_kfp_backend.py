"""The compiled v2 spec run as a KFP 2.x backend runs it, run after run (tests/kfp_backend.py).

Each run is one process of the emulated driver and launcher, in a private
mount namespace where the PVC (a temporary folder) is bind-mounted at the
spec's mountPath, with `PUBLISH_LOGS` on. The sequence is a retraining
schedule: span 1 is pushed; span 2 arrives and is warm-started, compared
with span 1's model and pushed; a run with nothing new trains and pushes
nothing; span 3's run loses its Trainer and KFP's retry of the run
finishes it. A control run shows TFX's own entrypoint failing there.
"""

import csv
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import pytest
import yaml

from pipeline.config import PROJECT_ROOT, load_config
from pipeline.definition import kfp_entrypoint, kubeflow

pytestmark = [pytest.mark.e2e, pytest.mark.kfp_backend]

MOUNT_PATH = '/mnt/shared'
BUCKET = 'mlpipeline'  # KFP's MinIO bucket
ROWS_PER_SPAN = 2500
OVERRIDES = [
  'kubeflow.image=registry.example/taxi-estimator:test',
  'kubeflow.pvc=pipeline-data',
  f'kubeflow.mount_path={MOUNT_PATH}',
  f'kubeflow.data_root={MOUNT_PATH}/data/taxi',
  f'kubeflow.pipeline_root={MOUNT_PATH}/pipeline',
  f'kubeflow.serving_dir={MOUNT_PATH}/serving',
  # The image's copy of the schema is the repository's own here.
  f'kubeflow.schema_file={PROJECT_ROOT / "data" / "schema" / "schema.pbtxt"}',
  'spans.pattern=span-{SPAN}/*',
  'trainer.train_steps=300',
  'trainer.eval_steps=100',
  'evaluator.threshold=0.6',
  # Span 2's model is compared with span 1's, but noise must not decide the test.
  'evaluator.max_change=1.0',
  'drift.enabled=false',
]


class S3:
  """An S3-compatible server on loopback (moto, from build/kfp2: it needs pydantic 2)."""

  def __init__(self, base: pathlib.Path):
    python = PROJECT_ROOT / 'build' / 'kfp2' / 'bin' / 'python'
    if not python.exists():
      subprocess.run(['make', '-s', '-C', str(PROJECT_ROOT), 'kfp2-env'], check=True)
    with socket.socket() as probe:
      probe.bind(('127.0.0.1', 0))
      port = probe.getsockname()[1]
    self.process = subprocess.Popen(
      [str(python), '-m', 'moto.server', '-H', '127.0.0.1', '-p', str(port)],
      stdout=(base / 's3.log').open('w'),
      stderr=subprocess.STDOUT,
    )
    # What KFP's launcher is given (the kfp-launcher ConfigMap and its secret).
    self.env = {
      'AWS_ENDPOINT_URL': f'http://127.0.0.1:{port}',
      'AWS_ACCESS_KEY_ID': 'minio',
      'AWS_SECRET_ACCESS_KEY': 'minio123',
      'AWS_DEFAULT_REGION': 'us-east-1',
    }
    import boto3

    self.client = boto3.client(
      's3',
      endpoint_url=self.env['AWS_ENDPOINT_URL'],
      aws_access_key_id='minio',
      aws_secret_access_key='minio123',
      region_name='us-east-1',
    )
    for _ in range(100):
      try:
        self.client.create_bucket(Bucket=BUCKET)
        return
      except Exception:  # not listening yet
        time.sleep(0.2)
    raise RuntimeError(f'the S3 server did not start: {(base / "s3.log").read_text()[-2000:]}')

  def keys(self, prefix: str = '') -> list[str]:
    pages = self.client.get_paginator('list_objects_v2').paginate(Bucket=BUCKET, Prefix=prefix)
    return [o['Key'] for page in pages for o in page.get('Contents', [])]


class Cluster:
  """A PVC, an S3 pipeline root and ML Metadata kept between runs."""

  def __init__(self, base: pathlib.Path, spec: pathlib.Path, s3: S3):
    self.base, self.spec, self.s3 = base, spec, s3
    self.pvc = base / 'pvc'
    self.root = f's3://{BUCKET}/{base.name}'
    self.store = base / 'mlmd.json'
    for path in (self.pvc, base / 'cwd'):
      path.mkdir(parents=True, exist_ok=True)

  def add_span(self, number: int):
    rows = list(csv.reader((PROJECT_ROOT / 'data' / 'taxi' / 'data.csv').open()))
    span = self.pvc / 'data' / 'taxi' / f'span-{number}'
    span.mkdir(parents=True)
    with (span / 'data.csv').open('w', newline='') as f:
      writer = csv.writer(f)
      writer.writerow(rows[0])
      writer.writerows(rows[1 + (number - 1) * ROWS_PER_SPAN : 1 + number * ROWS_PER_SPAN])

  def run(self, run_id: str, *extra: str, spec: pathlib.Path | None = None) -> dict:
    """One KFP run (or its retry), as the backend would; the task states and output."""
    backend = [
      sys.executable,
      '-m',
      'tests.kfp_backend',
      '--spec',
      str(spec or self.spec),
      '--root',
      str(self.root),
      '--store',
      str(self.store),
      *extra,
      run_id,
    ]
    # A private mount namespace: the PVC is at its mountPath for this run only.
    script = (
      f'mount -t tmpfs tmpfs {os.path.dirname(MOUNT_PATH)} && mkdir -p {MOUNT_PATH} && '
      f'mount --bind "$0" {MOUNT_PATH} && exec "$@"'
    )
    env = {**os.environ, 'PATH': f'{pathlib.Path(sys.executable).parent}:{os.environ["PATH"]}'}
    done = subprocess.run(
      [
        'unshare',
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        script,
        str(self.pvc),
        *backend,
      ],
      cwd=self.base / 'cwd',
      env={**env, **self.s3.env, 'PYTHONPATH': str(PROJECT_ROOT)},
      capture_output=True,
      text=True,
      timeout=1200,
    )
    print(done.stdout)
    assert done.stdout.strip(), done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result['returncode'] = done.returncode
    return result

  def versions(self) -> list[str]:
    serving = self.pvc / 'serving'
    return sorted(p.name for p in serving.iterdir() if p.name.isdigit()) if serving.exists() else []

  def mlmd(self) -> dict:
    return json.loads(self.store.read_text())

  def outputs(self, run_id: str, task: str) -> dict:
    """The task's last execution in `run_id`: its outputs' custom properties, by output key."""
    store = self.mlmd()
    (execution, *_) = [
      e for e in reversed(store['executions']) if e['run'] == run_id and e['task'] == task
    ]
    return {
      key: {
        k: next(iter(v.values()))
        for k, v in store['artifacts'][str(i)]['custom_properties'].items()
      }
      for key, i in execution['outputs'].items()
    }

  def mlmd_artifact(self, run_id: str, task: str, key: str) -> dict:
    store = self.mlmd()
    (execution, *_) = [
      e for e in reversed(store['executions']) if e['run'] == run_id and e['task'] == task
    ]
    return store['artifacts'][str(execution['outputs'][key])]

  def log(self, run_id: str, task: str) -> str:
    store = self.mlmd()
    (execution, *_) = [
      e for e in reversed(store['executions']) if e['run'] == run_id and e['task'] == task
    ]
    return pathlib.Path(execution['log']).read_text(errors='replace')


@pytest.fixture(scope='module')
def s3(tmp_path_factory):
  server = S3(tmp_path_factory.mktemp('s3'))
  yield server
  server.process.terminate()
  server.process.wait()


@pytest.fixture(scope='module')
def cluster(tmp_path_factory, s3):
  if shutil.which('unshare') is None:
    pytest.fail('the KFP backend tests need util-linux unshare (a private mount namespace)')
  base = tmp_path_factory.mktemp('kfp')
  spec = kubeflow.compile_pipeline(
    load_config(overrides=OVERRIDES), 'kubeflow-v2', base / 'v2.yaml'
  )
  return Cluster(base, spec, s3)


@pytest.fixture(scope='module')
def sequence(cluster):
  """The runs, in order; each test reads what it needs."""
  runs = {}
  cluster.add_span(1)
  runs['first'] = cluster.run('run-1')
  runs['first_versions'] = cluster.versions()
  cluster.add_span(2)
  runs['second'] = cluster.run('run-2')
  runs['second_versions'] = cluster.versions()
  state = cluster.pvc / 'pipeline' / 'kfp-state' / 'taxi-estimator.json'
  runs['state_after_second'] = state.read_text()
  runs['unchanged'] = cluster.run('run-3')
  runs['unchanged_versions'] = cluster.versions()
  runs['state_after_unchanged'] = state.read_text()
  cluster.add_span(3)
  # The Trainer's pod dies mid-training (say, evicted), then the run is retried.
  runs['killed'] = cluster.run('run-4', '--kill', 'Trainer', 'loss = ')
  runs['killed_versions'] = cluster.versions()
  runs['retried'] = cluster.run('run-4')
  runs['retried_versions'] = cluster.versions()
  return runs


def test_first_span_is_trained_and_pushed(sequence, cluster):
  first = sequence['first']
  assert first['returncode'] == 0, first
  assert set(first['tasks'].values()) == {'COMPLETE'}
  assert len(sequence['first_versions']) == 1
  pushed = cluster.outputs('run-1', 'Pusher')['pushed_model']
  assert pushed['pushed'] == 1.0 and pushed['pushed_version'] == sequence['first_versions'][0]
  assert 'executor-logs' in cluster.outputs('run-1', 'Pusher')  # PUBLISH_LOGS was on
  # The artifacts are in the bucket, put there by the launcher from the pods' disks.
  model = cluster.mlmd_artifact('run-1', 'Trainer', 'model')
  assert model['uri'].startswith(f'{cluster.root}/taxi-estimator/run-1/Trainer/')
  key = model['uri'].split(f'{BUCKET}/', 1)[1]
  assert f'{key}/Format-Serving/saved_model.pb' in cluster.s3.keys(key)
  assert cluster.s3.keys(f'{cluster.base.name}/taxi-estimator/run-1/Transform/')


def test_next_span_is_warm_started_compared_and_pushed(sequence, cluster):
  second = sequence['second']
  assert second['returncode'] == 0, second
  assert second['tasks']['CsvExampleGen'] == 'COMPLETE' and second['tasks']['Trainer'] == 'COMPLETE'
  first_version = sequence['first_versions'][0]
  model = cluster.outputs('run-2', 'Trainer')['model']
  assert f'warm-started from serving version {first_version}' in model['warm_start_note']
  blessing = cluster.outputs('run-2', 'Evaluator')['blessing']
  assert blessing['blessed'] == 1.0 and blessing['baseline_version'] == float(first_version)
  assert 'baseline_model_id' not in blessing  # the serving baseline is no MLMD artifact
  assert len(sequence['second_versions']) == 2


def test_nothing_new_trains_and_pushes_nothing(sequence, cluster):
  unchanged = sequence['unchanged']
  assert unchanged['returncode'] == 0, unchanged
  assert sequence['unchanged_versions'] == sequence['second_versions']
  assert sequence['state_after_unchanged'] == sequence['state_after_second']
  for task in ('CsvExampleGen', 'Transform', 'Trainer', 'Evaluator', 'Pusher'):
    for key, metadata in cluster.outputs('run-3', task).items():
      if key != 'executor-logs':
        assert metadata[kfp_entrypoint.NOTHING_NEW_KEY] == 'true', (task, key)
  assert 'nothing new' in cluster.log('run-3', 'CsvExampleGen')
  assert 'not run' in cluster.log('run-3', 'Trainer')
  assert 'Starting executor' not in cluster.log('run-3', 'Trainer')


def test_a_killed_trainer_loses_nothing_and_the_retried_run_pushes(sequence, cluster):
  killed = sequence['killed']
  assert killed['returncode'] == 1
  assert killed['tasks']['Trainer'] == 'FAILED'
  assert killed['tasks']['Evaluator'] == killed['tasks']['Pusher'] == 'NOT_RUN'
  assert sequence['killed_versions'] == sequence['second_versions']
  retried = sequence['retried']
  assert retried['returncode'] == 0, retried
  assert retried['tasks']['CsvExampleGen'] == 'DONE_BEFORE_RETRY'
  assert retried['tasks']['Trainer'] == retried['tasks']['Pusher'] == 'COMPLETE'
  assert len(sequence['retried_versions']) == 3
  assert cluster.outputs('run-4', 'Pusher')['pushed_model']['pushed'] == 1.0


def test_tfx_own_entrypoint_fails_on_this_backend(cluster, tmp_path):
  """The control: the emulation reproduces tensorflow/tfx#7768 and the logs output."""
  documents = list(yaml.safe_load_all(cluster.spec.read_text()))
  for executor in documents[0]['deploymentSpec']['executors'].values():
    executor['container']['command'] = [
      'python',
      '-m',
      'tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor',
    ]
  stock = tmp_path / 'stock.yaml'
  stock.write_text(yaml.safe_dump_all(documents))
  result = cluster.run('control', spec=stock)
  assert result['returncode'] == 1 and result['tasks']['CsvExampleGen'] == 'FAILED'
  assert 'Could not import system.Artifact' in cluster.log('control', 'CsvExampleGen')


def test_backends_before_2_17_without_published_logs(tmp_path, cluster):
  """KFP 2.0 to 2.16 (2.0 to 2.4 publish no logs): a fixed output file on each pod's
  disk, no names on outputs; a push, then a run with nothing new."""
  old = Cluster(tmp_path, cluster.spec, cluster.s3)
  old.add_span(1)
  options = ('--version', '2.0', '--publish-logs', 'false')
  first = old.run('run-1', *options)
  assert first['returncode'] == 0 and set(first['tasks'].values()) == {'COMPLETE'}, first
  assert len(old.versions()) == 1
  assert 'executor-logs' not in old.outputs('run-1', 'Pusher')
  again = old.run('run-2', *options)
  assert again['returncode'] == 0, again
  assert old.outputs('run-2', 'Trainer')['model'][kfp_entrypoint.NOTHING_NEW_KEY] == 'true'
  assert len(old.versions()) == 1
