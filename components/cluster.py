"""Training clusters: local OS processes, or a Kubeflow TFJob, each replica
running `python -m components.replica` with its own `TF_CONFIG`.

TFX starts no training cluster outside Vertex, so the Trainer executor uses
these. Estimator's between-graph replication does the rest: the chief
initialises and checkpoints, workers train asynchronously against the
parameter servers, and an optional evaluator task evaluates checkpoints.
"""

import dataclasses
import json
import logging
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Callable

# A worker, parameter server or evaluator that dies is restarted this many
# times (per replica) before the Trainer gives up; the chief is never restarted.
DEFAULT_MAX_RESTARTS = 3
# After the chief has finished, how long workers get to notice and exit.
WORKER_GRACE_SECONDS = 20
LOG_TAIL_LINES = 25


class TrainingError(RuntimeError):
  """A training cluster failed; the message names the replica and ends with its log."""


@dataclasses.dataclass(frozen=True)
class Topology:
  workers: int = 0
  parameter_servers: int = 0
  evaluator: bool = False

  def tasks(self) -> list[tuple[str, int]]:
    """Every replica as (TF_CONFIG task type, index)."""
    return ([('chief', 0)] + [('worker', i) for i in range(self.workers)]
            + [('ps', i) for i in range(self.parameter_servers)]
            + ([('evaluator', 0)] if self.evaluator else []))


def describe_exit(returncode: int) -> str:
  if returncode < 0:
    try:
      return f'killed by {signal.Signals(-returncode).name}'
    except ValueError:
      return f'killed by signal {-returncode}'
  return f'exit code {returncode}'


def log_tail(path: pathlib.Path, lines: int = LOG_TAIL_LINES) -> str:
  try:
    text = path.read_text(errors='replace').splitlines()
  except OSError:
    return '(no log)'
  return '\n'.join(text[-lines:])


def free_ports(count: int) -> list[int]:
  """`count` distinct free TCP ports on the loopback interface."""
  sockets = []
  try:
    for _ in range(count):
      s = socket.socket()
      s.bind(('127.0.0.1', 0))
      sockets.append(s)
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


class LocalCluster:
  """Runs every replica as a separate process on this machine and supervises them.

  Workers, parameter servers and the evaluator are restarted when they die,
  up to `max_restarts` times each; training resumes from the last checkpoint
  (a restarted parameter server makes the chief restore it). The run ends
  when the chief finishes and the evaluator has evaluated the final
  checkpoint. Every process is stopped on the way out, whatever the reason.
  """

  def __init__(self, command: list[str], topology: Topology, log_dir: pathlib.Path, *,
               max_restarts: int = DEFAULT_MAX_RESTARTS, timeout_s: float = 0,
               poll_s: float = 0.5):
    self._command = command
    self._topology = topology
    self._log_dir = pathlib.Path(log_dir)
    self._max_restarts = max_restarts
    self._timeout_s = timeout_s
    self._poll_s = poll_s
    self._procs: dict[tuple[str, int], subprocess.Popen] = {}
    self.restarts: dict[tuple[str, int], int] = {}

  def cluster_spec(self) -> dict:
    members = [t for t in self._topology.tasks() if t[0] != 'evaluator']
    ports = free_ports(len(members))
    spec: dict[str, list[str]] = {}
    for (task_type, _), port in zip(members, ports):
      spec.setdefault(task_type, []).append(f'127.0.0.1:{port}')
    return spec

  def log_path(self, task) -> pathlib.Path:
    return self._log_dir / f'{task[0]}-{task[1]}.log'

  def _start(self, task, cluster):
    tf_config = {'cluster': cluster, 'task': {'type': task[0], 'index': task[1]}}
    env = {**os.environ, 'TF_CONFIG': json.dumps(tf_config)}
    with open(self.log_path(task), 'a') as log:
      log.write(f'--- start {task[0]}:{task[1]} at {time.strftime("%H:%M:%S")}'
                f' (restart {self.restarts.get(task, 0)})\n')
      log.flush()
      self._procs[task] = subprocess.Popen(
          self._command + ['--task', f'{task[0]}:{task[1]}', '--parent-pid', str(os.getpid())],
          env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
          start_new_session=True)  # its own process group, stopped as a whole

  def _failure(self, task, what: str) -> TrainingError:
    return TrainingError(f'training replica {task[0]}:{task[1]} {what}; '
                         f'last lines of {self.log_path(task)}:\n{log_tail(self.log_path(task))}')

  def run(self):
    """Starts the cluster and returns when training is complete.

    Raises:
      TrainingError: the chief failed, a replica failed more than
        `max_restarts` times, or the timeout passed.
    """
    self._log_dir.mkdir(parents=True, exist_ok=True)
    cluster = self.cluster_spec()
    restore = _raise_on_sigterm()
    try:
      for task in self._topology.tasks():
        self._start(task, cluster)
      self._supervise(cluster)
    finally:
      self.stop()
      restore()

  def _supervise(self, cluster):
    deadline = time.monotonic() + self._timeout_s if self._timeout_s else None
    done: set[tuple[str, int]] = set()
    chief_done_at = None
    while True:
      for task, proc in list(self._procs.items()):
        returncode = proc.poll()
        if returncode is None or task in done:
          continue
        if task[0] == 'chief':
          if returncode != 0:
            raise self._failure(task, f'failed ({describe_exit(returncode)})')
          done.add(task)
          chief_done_at = time.monotonic()
        elif returncode == 0 and task[0] in ('worker', 'evaluator'):
          done.add(task)
        else:
          count = self.restarts.get(task, 0) + 1
          if count > self._max_restarts:
            raise self._failure(task, f'failed {count} times ({describe_exit(returncode)}); '
                                f'max_restarts is {self._max_restarts}')
          self.restarts[task] = count
          logging.warning('Training replica %s:%d %s; restart %d of %d.', task[0], task[1],
                          describe_exit(returncode), count, self._max_restarts)
          self._start(task, cluster)
      if chief_done_at is not None:
        evaluators = [t for t in self._procs if t[0] == 'evaluator']
        workers = [t for t in self._procs if t[0] == 'worker']
        if all(t in done for t in evaluators) and (
            all(t in done for t in workers)
            or time.monotonic() - chief_done_at > WORKER_GRACE_SECONDS):
          return  # parameter servers never exit by themselves; stop() ends them
      if deadline is not None and time.monotonic() > deadline:
        raise TrainingError(f'training did not finish within trainer.timeout_s={self._timeout_s:g}; '
                            f'replica logs are in {self._log_dir}')
      time.sleep(self._poll_s)

  def stop(self, grace_s: float = 5.0):
    """Stops every replica's process group: SIGTERM, then SIGKILL after `grace_s`."""
    running = [p for p in self._procs.values() if p.poll() is None]
    for proc in running:
      _signal_group(proc, signal.SIGTERM)
    end = time.monotonic() + grace_s
    for proc in running:
      try:
        proc.wait(max(0.0, end - time.monotonic()))
      except subprocess.TimeoutExpired:
        pass
    for proc in self._procs.values():
      _signal_group(proc, signal.SIGKILL)  # also any child the replica left
      proc.wait()


def _signal_group(proc: subprocess.Popen, sig):
  try:
    os.killpg(proc.pid, sig)
  except (ProcessLookupError, PermissionError):
    pass


def _raise_on_sigterm() -> Callable[[], None]:
  """Turns SIGTERM into an exception while the cluster runs, so cleanup runs."""
  if threading.current_thread() is not threading.main_thread():
    return lambda: None

  def handler(signum, frame):
    raise TrainingError('the Trainer was terminated (SIGTERM); training replicas stopped')
  previous = signal.signal(signal.SIGTERM, handler)
  return lambda: signal.signal(signal.SIGTERM, previous)


def replica_command(spec_file: str) -> list[str]:
  """How the launcher starts a replica process on this machine."""
  return [sys.executable, '-m', 'components.replica', '--spec', spec_file]


# --- Kubeflow ---------------------------------------------------------------

TFJOB_GROUP, TFJOB_VERSION, TFJOB_PLURAL = 'kubeflow.org', 'v1', 'tfjobs'
_REPLICA_TYPES = {'chief': 'Chief', 'worker': 'Worker', 'ps': 'PS', 'evaluator': 'Evaluator'}


def tfjob_manifest(name: str, *, namespace: str, image: str, spec_json: str,
                   topology: Topology, pvc: str = '', mount_path: str = '',
                   max_restarts: int = DEFAULT_MAX_RESTARTS, timeout_s: float = 0) -> dict:
  """A `kubeflow.org/v1` TFJob running every replica of one Trainer execution.

  The training operator sets each pod's TF_CONFIG. The chief is never
  restarted (its failure fails the job); the others restart on failure, at
  most `max_restarts` times in total. `pvc`, if given, is mounted at
  `mount_path` in every pod (the model directory is then under it).
  """
  container = {
      'name': 'tensorflow',  # the name the training operator looks for
      'image': image,
      'command': ['python', '-m', 'components.replica', '--spec-json', spec_json],
  }
  pod_spec: dict = {'containers': [container]}
  if pvc:
    container['volumeMounts'] = [{'name': 'shared', 'mountPath': mount_path}]
    pod_spec['volumes'] = [{'name': 'shared', 'persistentVolumeClaim': {'claimName': pvc}}]
  counts: dict[str, int] = {}
  for task_type, _ in topology.tasks():
    counts[task_type] = counts.get(task_type, 0) + 1
  replica_specs = {
      _REPLICA_TYPES[task_type]: {
          'replicas': count,
          'restartPolicy': 'Never' if task_type == 'chief' else 'OnFailure',
          'template': {'spec': pod_spec},
      } for task_type, count in counts.items()
  }
  run_policy: dict = {'cleanPodPolicy': 'Running', 'backoffLimit': max_restarts}
  if timeout_s:
    run_policy['activeDeadlineSeconds'] = int(timeout_s)
  return {
      'apiVersion': f'{TFJOB_GROUP}/{TFJOB_VERSION}',
      'kind': 'TFJob',
      'metadata': {'name': name, 'namespace': namespace,
                   'labels': {'app.kubernetes.io/managed-by': 'taxi-estimator-pipeline'}},
      'spec': {'runPolicy': run_policy, 'tfReplicaSpecs': replica_specs},
  }


class TFJobRunner:
  """Creates a TFJob, waits for it, and raises with the failing pod's log tail."""

  def __init__(self, manifest: dict, poll_s: float = 10.0):
    self._manifest = manifest
    self._poll_s = poll_s

  def run(self):
    from kubernetes import client, config as kube_config  # only the Kubeflow mode needs it

    try:
      kube_config.load_incluster_config()
    except kube_config.ConfigException:
      kube_config.load_kube_config()
    api = client.CustomObjectsApi()
    meta = self._manifest['metadata']
    name, namespace = meta['name'], meta['namespace']
    api.create_namespaced_custom_object(TFJOB_GROUP, TFJOB_VERSION, namespace, TFJOB_PLURAL,
                                        self._manifest)
    logging.info('Created TFJob %s/%s.', namespace, name)
    finished = False
    restore = _raise_on_sigterm()
    try:
      while True:
        job = api.get_namespaced_custom_object(TFJOB_GROUP, TFJOB_VERSION, namespace,
                                               TFJOB_PLURAL, name)
        state, message = tfjob_state(job)
        if state == 'Succeeded':
          finished = True
          return
        if state == 'Failed':
          finished = True
          raise TrainingError(f'TFJob {namespace}/{name} failed: {message}\n'
                              f'{_failed_pod_log(client.CoreV1Api(), namespace, name)}')
        time.sleep(self._poll_s)
    finally:
      restore()
      if not finished:  # interrupted or timed out here: do not leave the job running
        api.delete_namespaced_custom_object(TFJOB_GROUP, TFJOB_VERSION, namespace,
                                            TFJOB_PLURAL, name)


def tfjob_state(job: dict) -> tuple[str | None, str]:
  """The job's terminal condition ('Succeeded' or 'Failed') and its message, if any."""
  for condition in reversed(job.get('status', {}).get('conditions', [])):
    if condition.get('type') in ('Succeeded', 'Failed') and condition.get('status') == 'True':
      return condition['type'], condition.get('message', '')
  return None, ''


def _failed_pod_log(core, namespace: str, job_name: str) -> str:
  pods = core.list_namespaced_pod(
      namespace, label_selector=f'training.kubeflow.org/job-name={job_name}').items
  for pod in pods:
    if pod.status.phase == 'Failed':
      log = core.read_namespaced_pod_log(pod.metadata.name, namespace, tail_lines=LOG_TAIL_LINES)
      return f'last lines of pod {pod.metadata.name}:\n{log}'
  return '(no failed pod found)'
