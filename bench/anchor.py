"""Runs the anchor: TFX 1.15.1's own Chicago taxi Estimator pipeline, unmodified.

Only its paths and step counts are set. The pipeline definition, its module
file (`taxi_utils.py`, batch size 40) and its Beam arguments (DirectRunner,
multi-processing) are the installed package's; Beam arguments given after the
step counts replace the latter (the bench's smoke test runs it in process,
which measures nothing but costs a minute less).

  python -m bench.anchor OUTPUT_ROOT DATA_ROOT TRAIN_STEPS EVAL_STEPS [BEAM_ARG ...]
"""

import os
import sys
import types


def main(output_root: str, data_root: str, train_steps: int, eval_steps: int, beam_args=()):
  from absl import logging
  from tfx.examples.chicago_taxi_pipeline import taxi_pipeline_local as anchor
  from tfx.orchestration.local.local_dag_runner import LocalDagRunner
  from tfx.proto import trainer_pb2

  # The step counts are literals inside _create_pipeline; this shim is the
  # only way to set them without editing the anchor.
  anchor.trainer_pb2 = types.SimpleNamespace(
    TrainArgs=lambda num_steps: trainer_pb2.TrainArgs(num_steps=train_steps),
    EvalArgs=lambda num_steps: trainer_pb2.EvalArgs(num_steps=eval_steps),
  )
  logging.set_verbosity(logging.INFO)
  LocalDagRunner().run(
    anchor._create_pipeline(  # pylint: disable=protected-access
      pipeline_name=anchor._pipeline_name,  # pylint: disable=protected-access
      pipeline_root=os.path.join(output_root, 'pipeline'),
      data_root=data_root,
      module_file=os.path.join(os.path.dirname(anchor.__file__), 'taxi_utils.py'),
      serving_model_dir=os.path.join(output_root, 'serving'),
      metadata_path=os.path.join(output_root, 'metadata.sqlite'),
      beam_pipeline_args=list(beam_args) or anchor._beam_pipeline_args,
    )
  )  # pylint: disable=protected-access


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:])
