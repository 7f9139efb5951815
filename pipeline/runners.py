"""Runners: thin adapters that add orchestration details to `create_pipeline(config)`."""

import contextlib
import logging
import math
import os
import pathlib
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

from tfx.dsl.compiler import compiler, constants
from tfx.dsl.components.base import base_beam_component
from tfx.orchestration import metadata
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.portable import runtime_parameter_utils

from components.local_cluster import free_ports
from components.logs import tensorflow_logs_once
from pipeline.config import Config
from pipeline.pipeline import EXAMPLE_GEN_ID, create_pipeline
from pipeline.report import CACHED, EXECUTED, FAILED


class ComponentProgress(logging.Handler):
  """Follows LocalDagRunner's and the launcher's log lines to time each component.

  LocalDagRunner has no callbacks; its per-component log lines are the only
  hook, and the pinned TFX version keeps them stable.
  """

  def __init__(
    self,
    on_finish: Callable[[str, str, float], None],
    on_start: Callable[[str], None] = lambda name: None,
  ):
    super().__init__(logging.INFO)
    self._on_finish = on_finish
    self._on_start = on_start
    self.current = None
    self.timings = {}  # node id -> (state, seconds)
    self._started = 0.0
    self._state = EXECUTED

  def emit(self, record):
    msg, args = record.msg, record.args
    if msg in ('Component %s is running.', 'node %s is running.'):
      self.current, self._started, self._state = args[0], time.monotonic(), EXECUTED
      self._on_start(self.current)
    elif msg == 'A cached execution %d is used.':
      self._state = CACHED
    elif msg in ('Component %s is finished.', 'node %s is finished.'):
      self._finish(self._state)

  def fail(self):
    if self.current:
      self._finish(FAILED)

  def _finish(self, state):
    seconds = time.monotonic() - self._started
    self.timings[self.current] = (state, seconds)
    self._on_finish(self.current, state, seconds)
    self.current = None


class TrainingProgress(logging.Handler):
  """Follows the Estimator's own progress lines ("loss = 0.31, step = 1200" and
  "global_step/sec: 95.2", logged by TensorFlow at INFO, by this process or
  forwarded from a local cluster's chief) and reports, at most every
  `every_s` seconds, the step out of `total_steps`, the loss, steps per second
  and the time left."""

  _LOSS = re.compile(r'loss = ([-+0-9.eE]+|nan|inf), step = (\d+)')
  _RATE = re.compile(r'global_step/sec: ([-+0-9.eE]+)')

  def __init__(self, total_steps: int, report: Callable[[str], None], every_s: float = 5.0):
    super().__init__(logging.INFO)
    self._total, self._report, self._every_s = total_steps, report, every_s
    self._rate = None
    self._last = -math.inf

  def emit(self, record):
    try:
      message = record.getMessage()
    except (TypeError, ValueError):
      return
    rate = self._RATE.search(message)
    if rate:
      self._rate = float(rate.group(1))
      return
    loss = self._LOSS.search(message)
    if not loss or time.monotonic() - self._last < self._every_s:
      return
    self._last = time.monotonic()
    step = int(loss.group(2))
    parts = [
      f'step {step}/{self._total} ({100 * step / max(self._total, 1):.0f}%)',
      f'loss {float(loss.group(1)):.4f}',
    ]
    if self._rate:
      parts.append(f'{self._rate:.1f} steps/s')
      parts.append(f'ETA {max(self._total - step, 0) / self._rate:.0f} s')
    self._report('  '.join(parts))


# Options that tell TFX the Beam workers already have TFX and our code;
# without one, TFX builds and stages an sdist of itself for every component.
_DEPENDENCY_OPTIONS = (
  '--extra_package',
  '--extra_packages',
  '--setup_file',
  '--requirements_file',
  '--sdk_container_image',
  '--worker_harness_container_image',
)


def input_megabytes(config: Config) -> float:
  """Size of the CSV input, which picks the Beam runner when `beam.runner` is auto."""
  if '://' in config.data_root:
    return 0.0  # not measured; remote data is a job for a distributed runner anyway
  root = pathlib.Path(config.data_root)
  if not root.is_dir():
    return 0.0
  return sum(p.stat().st_size for p in root.rglob('*') if p.is_file()) / 2**20


def resolved_beam_runner(config: Config) -> str:
  """`beam.runner`, with auto decided by the input size."""
  if config.beam.runner != 'auto':
    return config.beam.runner
  return (
    'multi_process' if input_megabytes(config) > config.beam.auto_threshold_mb else 'in_process'
  )


def beam_args(config: Config, worker_pool: str | None = None) -> list[str]:
  """Beam pipeline options of the data-processing components.

  In-process DirectRunner gets none at all: any option makes TFX build an
  sdist of itself per component. Every other runner here runs workers that
  already have the code (this virtualenv, or the pipeline image on a
  cluster), so we say so with `--sdk_container_image=<kubeflow.image>`,
  which also is the right image for Flink, Spark or Dataflow workers.
  """
  beam = config.beam
  runner = resolved_beam_runner(config)
  if runner == 'in_process':
    args = []
  elif runner == 'multi_process':
    args = [
      '--runner=DirectRunner',
      '--direct_running_mode=multi_processing',
      f'--direct_num_workers={beam.workers or os.cpu_count() or 1}',
    ]
  elif runner == 'portable':
    args = ['--runner=PortableRunner', f'--job_endpoint={beam.job_endpoint or "embed"}']
    if beam.environment == 'process':
      if not worker_pool:
        raise ValueError('beam.environment=process needs a running worker pool')
      args += ['--environment_type=EXTERNAL', f'--environment_config={worker_pool}']
    else:
      args += ['--environment_type=LOOPBACK']
  else:  # custom
    args = []
  args += list(beam.args)
  if args and not any(a.split('=')[0] in _DEPENDENCY_OPTIONS for a in args):
    args.append(f'--sdk_container_image={config.kubeflow.image}')
  return args


@contextlib.contextmanager
def beam_worker_pool(config: Config) -> Iterator[str | None]:
  """Beam's worker pool service, when `beam.environment` is process; else None.

  It starts an SDK worker process per worker the runner asks for, from this
  virtualenv (Beam's PROCESS environment would need the Go boot binary of
  Beam's container, which a pip install does not have).
  """
  if resolved_beam_runner(config) != 'portable' or config.beam.environment != 'process':
    yield None
    return
  (port,) = free_ports(1)
  # The pool starts workers as plain `python`: put this interpreter first on PATH.
  env = {
    **os.environ,
    'PATH': os.pathsep.join([os.path.dirname(sys.executable), os.environ.get('PATH', '')]),
  }
  pool = subprocess.Popen(
    [sys.executable, '-m', 'apache_beam.runners.worker.worker_pool_main', f'--service_port={port}'],
    stdin=subprocess.DEVNULL,
    env=env,
    start_new_session=True,
  )
  try:
    _wait_for_port(port, pool)
    yield f'localhost:{port}'
  finally:
    pool.terminate()
    try:
      pool.wait(10)
    except subprocess.TimeoutExpired:
      pool.kill()
      pool.wait()


def _wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 60):
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    if process.poll() is not None:
      raise RuntimeError(f'Beam worker pool exited with code {process.returncode}')
    with socket.socket() as s:
      if s.connect_ex(('127.0.0.1', port)) == 0:
        return
    time.sleep(0.2)
  raise RuntimeError(f'Beam worker pool did not listen on port {port} within {timeout_s:g} s')


def add_beam_args(
  pipeline: tfx_pipeline.Pipeline, options: list[str], in_process: tuple[str, ...] = ()
) -> None:
  """Gives every Beam-powered component `options` (what `Pipeline(beam_pipeline_args=...)`
  would have done at construction), except those named in `in_process`."""
  if options:
    for component in pipeline.components:
      beam = isinstance(component, base_beam_component.BaseBeamComponent)
      if beam and component.id not in in_process:
        component.with_beam_pipeline_args(options)


def in_process_components(config: Config) -> tuple[str, ...]:
  """Components that `beam.runner=auto` keeps in process when it picks multi-process.

  ExampleGen's work is one file per worker, encoded in C++: on one 1.5 M-row
  file, two DirectRunner workers took 58 s against 49 s in process, the
  difference being every example moved between processes.
  """
  return (EXAMPLE_GEN_ID,) if config.beam.runner == 'auto' else ()


def _local_ir(config: Config, run_id: str, beam_options: list[str]):
  """The pipeline's IR with a SQLite MLMD store, Beam options and our run id."""
  config.output_root.mkdir(parents=True, exist_ok=True)
  pipeline: tfx_pipeline.Pipeline = create_pipeline(config)
  pipeline.metadata_connection_config = metadata.sqlite_metadata_connection_config(
    str(config.metadata_path)
  )
  add_beam_args(pipeline, beam_options, in_process_components(config))
  ir = compiler.Compiler().compile(pipeline)
  # Our run id instead of the runner's timestamp, so the summary can find the run.
  runtime_parameter_utils.substitute_runtime_parameter(
    ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id}
  )
  return ir


RUNNERS = ('local', 'beam')


def run(
  config: Config,
  run_id: str,
  progress: ComponentProgress,
  runner: str = 'local',
  training: TrainingProgress | None = None,
) -> None:
  """Runs the pipeline with TFX's LocalDagRunner or BeamDagRunner, SQLite MLMD.

  Both run here, with the Beam options of `config.beam` for the components
  that use Beam; BeamDagRunner also runs the orchestration itself as a Beam
  pipeline (on the in-process DirectRunner).
  """
  if runner not in RUNNERS:
    raise ValueError(f'runner {runner!r}: expected one of {", ".join(RUNNERS)}')
  absl_logger = logging.getLogger('absl')
  absl_logger.addHandler(progress)
  # The Estimator logs its loss and pace at INFO: into the run's log, and
  # through `training` onto the console.
  tf_logger = tensorflow_logs_once()
  tf_logger.setLevel(logging.INFO)
  if training:
    tf_logger.addHandler(training)
  if resolved_beam_runner(config) == 'portable':
    # The job service's "Completed job ... with state DONE" lines, in the run's log.
    logging.getLogger('apache_beam.runners.portability').setLevel(logging.INFO)
  try:
    with beam_worker_pool(config) as pool:
      ir = _local_ir(config, run_id, beam_args(config, pool))
      if runner == 'local':
        LocalDagRunner().run_with_ir(ir)
      else:
        BeamDagRunner().run_with_ir(ir)
  except BaseException:
    progress.fail()
    raise
  finally:
    absl_logger.removeHandler(progress)
    if training:
      tf_logger.removeHandler(training)
