"""Runners: thin adapters that add orchestration details to `create_pipeline(config)`."""

import logging
import time
from typing import Callable

from tfx.dsl.compiler import compiler, constants
from tfx.orchestration import metadata
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.portable import runtime_parameter_utils

from pipeline.config import Config
from pipeline.pipeline import create_pipeline
from pipeline.report import CACHED, EXECUTED, FAILED


class ComponentProgress(logging.Handler):
  """Follows LocalDagRunner's and the launcher's log lines to time each component.

  LocalDagRunner has no callbacks; its per-component log lines are the only
  hook, and the pinned TFX version keeps them stable.
  """

  def __init__(self, on_finish: Callable[[str, str, float], None]):
    super().__init__(logging.INFO)
    self._on_finish = on_finish
    self.current = None
    self.timings = {}  # node id -> (state, seconds)
    self._started = 0.0
    self._state = EXECUTED

  def emit(self, record):
    msg, args = record.msg, record.args
    if msg == 'Component %s is running.':
      self.current, self._started, self._state = args[0], time.monotonic(), EXECUTED
    elif msg == 'A cached execution %d is used.':
      self._state = CACHED
    elif msg == 'Component %s is finished.':
      self._finish(self._state)

  def fail(self):
    if self.current:
      self._finish(FAILED)

  def _finish(self, state):
    seconds = time.monotonic() - self._started
    self.timings[self.current] = (state, seconds)
    self._on_finish(self.current, state, seconds)
    self.current = None


def run_local(config: Config, run_id: str, progress: ComponentProgress) -> None:
  """Runs the pipeline in this process with LocalDagRunner and a SQLite MLMD store."""
  config.output_root.mkdir(parents=True, exist_ok=True)
  pipeline = create_pipeline(config)
  pipeline.metadata_connection_config = metadata.sqlite_metadata_connection_config(
      str(config.metadata_path))
  ir = compiler.Compiler().compile(pipeline)
  # Our run id instead of LocalDagRunner's timestamp, so the summary can find the run.
  runtime_parameter_utils.substitute_runtime_parameter(
      ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id})
  absl_logger = logging.getLogger('absl')
  absl_logger.addHandler(progress)
  try:
    LocalDagRunner().run_with_ir(ir)
  except BaseException:
    progress.fail()
    raise
  finally:
    absl_logger.removeHandler(progress)
