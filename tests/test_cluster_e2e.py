"""The Trainer on a local cluster of real replicas, through the pipeline CLI.

The tests share one output root and run in file order: a single-process run
and a cluster run on the same steps (each pushing to its own serving
directory), then a worker killed mid-training, then a killed chief, which
must fail clearly and leave the serving model alone. (Exhausted restarts end
the launcher as a killed chief does; `test_cluster.py` tests their bound.)
"""

import pathlib
import re
import signal
import subprocess
import time

import psutil
import pytest

from components import serving
from tests.conftest import latest_summary, pipeline_command, run_pipeline, sample_workspace

pytestmark = pytest.mark.e2e
SAMPLE_ROWS = 3000
STEPS = 2000  # long enough that the worker (started 5 s after the chief) trains too
CLUSTER = ('trainer.cluster=local', 'trainer.workers=1', 'trainer.parameter_servers=1')


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
  return sample_workspace(tmp_path_factory.mktemp('cluster'), SAMPLE_ROWS)


def run(root, *overrides, serving_dir='serving'):
  return run_pipeline(root, *_common(root, serving_dir), *overrides)


def _common(root, serving_dir):
  # No warm start, and a generous change threshold: these runs compare
  # topologies and failures, not successive models.
  return (
    f'trainer.train_steps={STEPS}',
    'trainer.eval_steps=20',
    'evaluator.threshold=0.75',
    'evaluator.max_change=0.05',
    'trainer.warm_start=false',
    f'serving_dir={root / serving_dir}',
  )


def replicas(root) -> list[psutil.Process]:
  """The training replica processes of runs under `root`, each with the
  command line it had when listed (`proc.info['cmdline']`): a replica may
  exit before it is read again."""
  found = []
  for proc in psutil.process_iter(['cmdline']):
    cmdline = proc.info['cmdline'] or []
    if 'components.replica' in cmdline and any(str(root) in arg for arg in cmdline):
      found.append(proc)
  return found


def task_of(proc) -> str:
  cmdline = proc.info['cmdline']
  return cmdline[cmdline.index('--task') + 1]


def kill_when_training(root, task, *overrides, serving_dir='serving'):
  """Runs the pipeline and SIGKILLs replica `task` once it has logged a training step.

  Returns (process, summary, log of the killed replica).
  """
  command = pipeline_command(root, *_common(root, serving_dir), *overrides)
  (root / 'out' / 'latest_summary.json').unlink(missing_ok=True)
  with subprocess.Popen(
    command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  ) as process:
    log = _wait_for_training(root, task, process)
    stdout, stderr = process.communicate(timeout=900)
  process.stdout_text, process.stderr_text = stdout, stderr
  return process, latest_summary(root), log


def _wait_for_training(root, task, process, timeout_s=600) -> pathlib.Path:
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    assert process.poll() is None, 'the pipeline ended before the replica trained'
    for proc in replicas(root):
      if task_of(proc) != task:
        continue
      cmdline = proc.info['cmdline']
      log = (
        pathlib.Path(cmdline[cmdline.index('--spec') + 1]).parent / f'{task.replace(":", "-")}.log'
      )
      if log.exists() and 'loss = ' in log.read_text(errors='replace'):
        proc.send_signal(signal.SIGKILL)
        return log
    time.sleep(0.2)
  raise AssertionError(f'replica {task} never started training')


def final_step(summary) -> int:
  """The global step of the newest checkpoint of the run's Trainer."""
  import tensorflow as tf

  model_dir = pathlib.Path(summary['training']['model_run']) / 'Format-Serving'
  return int(tf.train.load_variable(tf.train.latest_checkpoint(str(model_dir)), 'global_step'))


@pytest.fixture(scope='module')
def single_process(workspace):
  return run(workspace, serving_dir='serving-single')


@pytest.fixture(scope='module')
def local_cluster(workspace, single_process):
  return run(workspace, *CLUSTER)


def test_local_cluster_trains_as_well_as_one_process(single_process, local_cluster, workspace):
  for process, summary in (single_process, local_cluster):
    assert process.returncode == 0, process.stderr[-3000:]
    assert summary['blessed'] and summary['pushed_path']
  auc_single = single_process[1]['metrics']['auc']
  auc_cluster = local_cluster[1]['metrics']['auc']
  assert abs(auc_cluster - auc_single) <= 0.01, (auc_single, auc_cluster)
  assert final_step(local_cluster[1]) >= STEPS
  assert not replicas(workspace)


def test_local_cluster_keeps_each_replica_log_and_one_model(local_cluster):
  summary = local_cluster[1]
  run_dir = pathlib.Path(summary['training']['model_run'])
  logs = sorted(p.name for p in (run_dir / 'replicas').glob('*.log'))
  assert logs == ['chief-0.log', 'ps-0.log', 'worker-0.log']
  assert 'loss = ' in (run_dir / 'replicas' / 'worker-0.log').read_text()
  chief_log = (run_dir / 'replicas' / 'chief-0.log').read_text()
  assert len(re.findall(r'loss = [0-9.]+, step = 0\b', chief_log)) == 1  # each TF line once
  # The chief's progress reaches the console through the launcher.
  assert re.search(r'^    step \d+/\d+ \(\d+%\)  loss \d', local_cluster[0].stdout, re.M)
  model = pathlib.Path(summary['training']['model'])
  assert sorted(p.name for p in model.iterdir()) == ['Format-Serving', 'Format-TFMA']
  assert (model / 'Format-Serving' / 'saved_model.pb').exists()
  assert (model / 'Format-TFMA' / 'saved_model.pb').exists()


def test_a_killed_worker_is_restarted_and_the_model_is_pushed(local_cluster, workspace):
  before = serving.versions(workspace / 'serving')
  process, summary, log = kill_when_training(
    workspace, 'worker:0', *CLUSTER, 'trainer.hparams.learning_rate=0.06'
  )
  assert process.returncode == 0, process.stderr_text[-3000:]
  assert log.read_text().count('--- start worker:0') == 2
  assert '(restart 1)' in log.read_text()
  assert final_step(summary) >= STEPS
  assert summary['pushed_path'] and len(serving.versions(workspace / 'serving')) == len(before) + 1
  # A new learning rate alone reuses the cached Transform.
  states = {c['name']: c['state'] for c in summary['components']}
  assert states['Transform'] == 'cached' and states['Trainer'] == 'executed'
  assert not replicas(workspace)


def test_a_killed_chief_fails_the_run_and_pushes_nothing(local_cluster, workspace):
  before = serving.versions(workspace / 'serving')
  process, summary, _ = kill_when_training(
    workspace, 'chief:0', *CLUSTER, 'trainer.hparams.learning_rate=0.07'
  )
  assert process.returncode == 1
  assert (
    'error: Trainer failed: training replica chief:0 failed (killed by SIGKILL)'
    in process.stderr_text
  )
  # Its error, not TF's deprecation warnings; the summary keeps it short and names the log.
  assert (
    'deprecat' not in process.stderr_text and 'Instructions for updating' not in process.stderr_text
  )
  assert len(summary['error']) <= 2000 and summary['log_file'] in process.stderr_text
  assert summary['status'] == 'failed' and not summary['pushed_path']
  assert serving.versions(workspace / 'serving') == before
  assert not replicas(workspace)
