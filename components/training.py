"""The Estimator Trainer: TFX's estimator executor, warm-starting from the serving model.

Warm start is resolved here, at execution time, from the push destination
rather than by a Resolver node: OSS Kubeflow v2 cannot run Resolvers, and a
Resolver makes the Trainer's inputs change after every push, so a rerun with
nothing changed would retrain. Reading it here keeps the cache key to data,
code and config.
"""

from absl import logging
from tfx.components.trainer import executor as trainer_executor

from components import serving

# Keys of the Trainer's custom_config that the pipeline sets (the rest are hyperparameters).
PUSH_DIR_KEY = 'push_dir'
WARM_START_KEY = 'warm_start'
ARCHITECTURE_KEY = 'architecture'


class EstimatorTrainerExecutor(trainer_executor.Executor):
  """Runs `trainer_fn` with `train_and_evaluate`; `base_model` is the serving model."""

  def _GetFnArgs(self, input_dict, output_dict, exec_properties):
    fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
    config = fn_args.custom_config or {}
    if not fn_args.base_model and config.get(WARM_START_KEY):
      fn_args.base_model = warm_start_model(config.get(PUSH_DIR_KEY), config.get(ARCHITECTURE_KEY))
    return fn_args


def warm_start_model(push_dir: str | None, architecture: str | None) -> str | None:
  """The serving model's directory if it has the same architecture, else None."""
  current = serving.latest(push_dir) if push_dir else None
  if current is None:
    logging.info('Warm start: no model is serving yet; training from scratch.')
    return None
  if current.record.get(ARCHITECTURE_KEY) != architecture:
    logging.info('Warm start: serving version %d has another architecture; '
                 'training from scratch.', current.version)
    return None
  logging.info('Warm start from serving version %d at %s.', current.version, current.path)
  return current.path
