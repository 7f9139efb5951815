"""The local runners: our ConcurrentDagRunner (TFX's LocalDagRunner, running
independent nodes side by side) and TFX's BeamDagRunner over
`create_pipeline(config)`, with a SQLite metadata store and the Beam policy's options."""

import logging

from tfx.dsl.compiler import compiler, constants
from tfx.orchestration import metadata
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner
from tfx.orchestration.portable import runtime_parameter_utils

from components import beam_tuning, ids, smoke_check
from components.logs import tensorflow_logs_once
from pipeline.config import Config
from pipeline.definition.beam import (
  add_beam_args,
  beam_args,
  beam_worker_pool,
  in_process_components,
  resolved_beam_runner,
)
from pipeline.definition.concurrent_runner import ConcurrentDagRunner
from pipeline.definition.pipeline import create_pipeline
from pipeline.definition.progress import ComponentProgress, ComponentStarts, TrainingProgress


def _local_ir(config: Config, run_id: str, worker_pool: str | None):
  """The pipeline's IR with a SQLite MLMD store, Beam options and our run id."""
  config.output_root.mkdir(parents=True, exist_ok=True)
  pipeline: tfx_pipeline.Pipeline = create_pipeline(config)
  pipeline.metadata_connection_config = metadata.sqlite_metadata_connection_config(
    str(config.metadata_path)
  )
  add_beam_args(
    pipeline,
    beam_args(config, worker_pool),
    in_process_components(config),
    side_by_side=beam_args(config, worker_pool, side_by_side=True),
  )
  ir = compiler.Compiler().compile(pipeline)
  # Our run id instead of the runner's timestamp, so the summary can find the run.
  runtime_parameter_utils.substitute_runtime_parameter(
    ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id}
  )
  return ir


RUNNERS = ('local', 'beam')


def _prewarm_at_training(component: str) -> None:
  if component == ids.TRAINER:
    smoke_check.prewarm()


def run(
  config: Config,
  run_id: str,
  progress: ComponentProgress,
  runner: str = 'local',
  training: TrainingProgress | None = None,
) -> None:
  """Runs the pipeline with ConcurrentDagRunner or TFX's BeamDagRunner, SQLite MLMD.

  Both run here, with the Beam options of `config.beam` for the components
  that use Beam; BeamDagRunner also runs the orchestration itself as a Beam
  pipeline (on the in-process DirectRunner).
  """
  if runner not in RUNNERS:
    raise ValueError(f'runner {runner!r}: expected one of {", ".join(RUNNERS)}')
  beam_tuning.install()
  absl_logger = logging.getLogger('absl')
  absl_logger.addHandler(progress)
  # The Evaluator's smoke check runs in a fresh process; started as the
  # Trainer starts, it has imported TensorFlow by the time the Evaluator
  # asks (here the Evaluator runs in this process, as on no other runner).
  prewarm = ComponentStarts(_prewarm_at_training)
  absl_logger.addHandler(prewarm)
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
      ir = _local_ir(config, run_id, pool)
      if runner == 'local':
        # The run's error is the first failed component's in our order,
        # which names it in the run's record (ExampleValidator before Transform).
        ConcurrentDagRunner(error_order=ids.ALL).run_with_ir(ir)
      else:
        BeamDagRunner().run_with_ir(ir)
  except BaseException:
    progress.fail()
    raise
  finally:
    absl_logger.removeHandler(progress)
    absl_logger.removeHandler(prewarm)
    smoke_check.discard_warm()
    if training:
      tf_logger.removeHandler(training)
