"""A training cluster of local processes: every replica on this machine, supervised.

By default the replicas run in a network namespace of their own, where only
a loopback interface exists: TF's gRPC servers listen on every interface and
run graphs for anyone who connects, so they must not be reachable from the
network. The namespace is made without privileges (a user namespace maps
this user to root inside it) with util-linux's `unshare` and `nsenter`.
"""

import contextlib
import json
import logging
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

from components.cluster import (
  DEFAULT_MAX_RESTARTS,
  Topology,
  TrainingError,
  describe_exit,
  error_tail,
  raise_on_sigterm,
)

_LOG = logging.getLogger(__name__)

# After the chief has finished, how long workers get to notice and exit.
WORKER_GRACE_SECONDS = 20
# The Estimator's progress lines in the chief's log, which the launcher
# passes on to its own TensorFlow logger (the console shows them from there).
PROGRESS_MARKERS = ('loss = ', 'global_step/sec: ')


class LogFollower:
  """Hands on the lines appended to a log file that carry one of `markers`."""

  def __init__(self, path: pathlib.Path, markers=PROGRESS_MARKERS):
    self._path, self._markers, self._offset = path, markers, 0

  def poll(self, emit) -> None:
    """Calls `emit(line)` for each new complete line holding a marker."""
    try:
      with open(self._path, 'rb') as f:
        f.seek(self._offset)
        data = f.read()
    except OSError:
      return
    complete = data[: data.rfind(b'\n') + 1]
    self._offset += len(complete)
    for line in complete.decode(errors='replace').splitlines():
      if any(marker in line for marker in self._markers):
        emit(line)


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


# Brings the namespace's loopback interface up (it starts down), says so,
# and keeps the namespace alive until its stdin closes.
_HOLDER = """
import fcntl, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack('16sH', fcntl.ioctl(s, 0x8913, struct.pack('16sH', b'lo', 0))[:18])[1]
fcntl.ioctl(s, 0x8914, struct.pack('16sH', b'lo', flags | 1))
print('ready', flush=True)
sys.stdin.read()
"""


class NetworkUnavailable(TrainingError):
  """A private network namespace cannot be made on this machine."""


class PrivateNetwork:
  """A network namespace with only loopback, which processes can be started in."""

  def __init__(self):
    self._holder = None

  def __enter__(self):
    missing = [tool for tool in ('unshare', 'nsenter') if not shutil.which(tool)]
    if missing:
      raise NetworkUnavailable(f'{" and ".join(missing)} (util-linux) not found')
    self._holder = subprocess.Popen(
      ['unshare', '--user', '--map-root-user', '--net', '--', sys.executable, '-c', _HOLDER],
      stdin=subprocess.PIPE,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
      start_new_session=True,
    )
    if self._holder.stdout.readline().strip() != 'ready':
      self._holder.stdin.close()
      error = self._holder.stderr.read().strip().splitlines()
      self._holder.wait()
      raise NetworkUnavailable(error[-1] if error else 'unshare failed')
    return self

  def command(self, command: list[str]) -> list[str]:
    """`command`, to be run inside the namespace (nsenter execs it: same pid)."""
    return ['nsenter', f'--target={self._holder.pid}', '--user', '--net', '--', *command]

  def __exit__(self, *exc):
    self._holder.stdin.close()
    try:
      self._holder.wait(10)
    except subprocess.TimeoutExpired:
      self._holder.kill()
      self._holder.wait()


class LocalCluster:
  """Runs every replica as a separate process on this machine and supervises them.

  Workers, parameter servers and the evaluator are restarted when they die,
  up to `max_restarts` times each; training resumes from the last checkpoint
  (a restarted parameter server makes the chief restore it). The run ends
  when the chief finishes and the evaluator has evaluated the final
  checkpoint. Every process is stopped on the way out, whatever the reason.
  """

  def __init__(
    self,
    command: list[str],
    topology: Topology,
    log_dir: pathlib.Path,
    *,
    max_restarts: int = DEFAULT_MAX_RESTARTS,
    timeout_s: float = 0,
    poll_s: float = 0.5,
    private_network: bool = True,
  ):
    self._command = command
    self._private_network = private_network
    self._network: PrivateNetwork | None = None
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
    for (task_type, _), port in zip(members, ports, strict=True):
      spec.setdefault(task_type, []).append(f'127.0.0.1:{port}')
    return spec

  def log_path(self, task) -> pathlib.Path:
    return self._log_dir / f'{task[0]}-{task[1]}.log'

  def _start(self, task, cluster):
    tf_config = {'cluster': cluster, 'task': {'type': task[0], 'index': task[1]}}
    env = {**os.environ, 'TF_CONFIG': json.dumps(tf_config)}
    with open(self.log_path(task), 'a') as log:
      log.write(
        f'--- start {task[0]}:{task[1]} at {time.strftime("%H:%M:%S")}'
        f' (restart {self.restarts.get(task, 0)})\n'
      )
      log.flush()
      command = [*self._command, '--task', f'{task[0]}:{task[1]}', '--parent-pid', str(os.getpid())]
      self._procs[task] = subprocess.Popen(
        self._network.command(command) if self._network else command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
      )  # its own process group, stopped as a whole

  def _failure(self, task, what: str) -> TrainingError:
    return TrainingError(
      f'training replica {task[0]}:{task[1]} {what}; '
      f'its log {self.log_path(task)} ends:\n{error_tail(self.log_path(task))}'
    )

  def run(self):
    """Starts the cluster and returns when training is complete.

    Raises:
      TrainingError: the chief failed, a replica failed more than
        `max_restarts` times, or the timeout passed.
    """
    self._log_dir.mkdir(parents=True, exist_ok=True)
    cluster = self.cluster_spec()
    restore = raise_on_sigterm()
    with PrivateNetwork() if self._private_network else contextlib.nullcontext() as network:
      self._network = network
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
    chief = LogFollower(self.log_path(('chief', 0)))
    tf_logger = logging.getLogger('tensorflow')
    while True:
      chief.poll(lambda line: tf_logger.info('chief: %s', line))
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
            raise self._failure(
              task,
              f'failed {count} times ({describe_exit(returncode)}); '
              f'max_restarts is {self._max_restarts}',
            )
          self.restarts[task] = count
          _LOG.warning(
            'Training replica %s:%d %s; restart %d of %d.',
            task[0],
            task[1],
            describe_exit(returncode),
            count,
            self._max_restarts,
          )
          self._start(task, cluster)
      if chief_done_at is not None:
        evaluators = [t for t in self._procs if t[0] == 'evaluator']
        workers = [t for t in self._procs if t[0] == 'worker']
        if all(t in done for t in evaluators) and (
          all(t in done for t in workers) or time.monotonic() - chief_done_at > WORKER_GRACE_SECONDS
        ):
          return  # parameter servers never exit by themselves; stop() ends them
      if deadline is not None and time.monotonic() > deadline:
        raise TrainingError(
          f'training did not finish within trainer.timeout_s={self._timeout_s:g}; '
          f'replica logs are in {self._log_dir}'
        )
      time.sleep(self._poll_s)

  def stop(self, grace_s: float = 5.0):
    """Stops every replica's process group: SIGTERM, then SIGKILL after `grace_s`."""
    running = [p for p in self._procs.values() if p.poll() is None]
    for proc in running:
      _signal_group(proc, signal.SIGTERM)
    end = time.monotonic() + grace_s
    for proc in running:
      with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(max(0.0, end - time.monotonic()))
    for proc in self._procs.values():
      _signal_group(proc, signal.SIGKILL)  # also any child the replica left
      proc.wait()


def _signal_group(proc: subprocess.Popen, sig):
  with contextlib.suppress(ProcessLookupError, PermissionError):
    os.killpg(proc.pid, sig)
