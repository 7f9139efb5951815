"""Beam policy: which runner the data components use, with which options, and its workers."""

import contextlib
import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from tfx.dsl.components.base import base_beam_component
from tfx.orchestration import pipeline as tfx_pipeline

from components import csv_ingest, ids
from components.local_cluster import free_ports
from pipeline.config import Config

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


# Components that run side by side (`pipeline.py`: the data is profiled
# while Transform analyses it). With the multi-process runner at one worker
# per CPU, each gets half the CPUs' workers: the two together then start as
# many worker processes as one alone, each holding TF and its libraries (at
# 100x the data, four workers on two cores peaked at 4.3 GB, two at 2.5 GB).
SIDE_BY_SIDE = (ids.STATISTICS_GEN, ids.TRANSFORM)


def beam_args(
  config: Config, worker_pool: str | None = None, side_by_side: bool = False
) -> list[str]:
  """Beam pipeline options of the data-processing components (of those in
  `SIDE_BY_SIDE` if `side_by_side`).

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
    workers = beam.workers or os.cpu_count() or 1
    if side_by_side and not beam.workers:
      workers = max(1, workers // 2)
    args = [
      '--runner=DirectRunner',
      '--direct_running_mode=multi_processing',
      f'--direct_num_workers={workers}',
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
  pipeline: tfx_pipeline.Pipeline,
  options: list[str],
  in_process: tuple[str, ...] = (),
  side_by_side: list[str] | None = None,
) -> None:
  """Gives every Beam-powered component `options` (what `Pipeline(beam_pipeline_args=...)`
  would have done at construction), except those named in `in_process`, and
  those in `SIDE_BY_SIDE` `side_by_side` if given."""
  for component in pipeline.components:
    beam = isinstance(component, base_beam_component.BaseBeamComponent)
    if not beam or component.id in in_process:
      continue
    chosen = side_by_side if side_by_side is not None and component.id in SIDE_BY_SIDE else options
    if chosen:
      component.with_beam_pipeline_args(chosen)


def in_process_components(config: Config) -> tuple[str, ...]:
  """Components that `beam.runner=auto` keeps in process when it picks multi-process.

  ExampleGen's units of work are files, and ranges of `csv_ingest.RANGE_BYTES`
  of a quote-free file: below two ranges' worth of input there is at most
  one unit of a size worth a worker, and worker processes add only their
  start-up (importing TF).
  """
  if config.beam.runner != 'auto':
    return ()
  small = input_megabytes(config) < 2 * csv_ingest.RANGE_BYTES / 2**20
  return (ids.EXAMPLE_GEN,) if small else ()
