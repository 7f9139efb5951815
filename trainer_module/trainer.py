"""`trainer_fn`: what TFX's Estimator Trainer executor calls to get the Estimator and specs."""

import os
from typing import Literal

import pydantic
import tensorflow_transform as tft
from tensorflow import estimator as tf_estimator

from trainer_module import inputs, model


class HParams(pydantic.BaseModel):
  """The hyperparameters this model reads, with the values used for those the
  config's trainer.hparams does not set. The pipeline checks trainer.hparams
  against it before a run: an unknown or mistyped one is refused."""

  class Config:
    extra = 'forbid'

  estimator: Literal['custom', 'canned', 'keras'] = 'custom'
  hidden_units: list[int] = [64, 32, 16]
  learning_rate: float = 0.05
  batch_size: int = 128
  # A checkpoint every `checkpoint_secs` seconds of training (the Estimator's
  # own way), or every `checkpoint_steps` steps if set. Each checkpoint
  # writes the graph, the transform inside it, and is followed by an
  # evaluation: every 1,000 steps that was a seventh of a 10,000-step
  # training on the bundled data. A restarted replica resumes from the newest.
  checkpoint_steps: int | None = None
  checkpoint_secs: int = 60


EXPORTER_NAME = 'taxi'


def warm_start_settings(base_model):
  """Warm-start settings from a serving SavedModel directory, or None."""
  if not base_model:
    return None
  return tf_estimator.WarmStartSettings(
    ckpt_to_initialize_from=os.path.join(base_model, 'variables', 'variables')
  )


def trainer_fn(fn_args, schema):
  """Builds the Estimator, its train/eval specs and the TFMA eval receiver.

  Args:
    fn_args: TFX `FnArgs`: train/eval files and steps, the transform output,
      the model-run directory, `base_model` (a SavedModel to warm-start from,
      or None) and `custom_config`: the pipeline's ModuleArgs (`task`,
      `hparams` (see HParams), `num_shards`, `shard_index`,
      `throttle_secs`).
    schema: the raw data schema (unused: the Transform output carries it).

  Returns:
    A dict with `estimator`, `train_spec`, `eval_spec` (one FinalExporter whose
    serving input is raw serialized tf.Examples) and `eval_input_receiver_fn`.
  """
  del schema
  args = fn_args.custom_config
  hp = HParams.parse_obj(args['hparams']).dict()
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  batch_size = int(hp['batch_size'])

  train_spec = tf_estimator.TrainSpec(
    lambda: inputs.input_fn(
      fn_args.train_files,
      tf_transform_output,
      batch_size,
      training=True,
      num_shards=args['num_shards'],
      shard_index=args['shard_index'],
    ),
    max_steps=fn_args.train_steps,
  )
  exporter = tf_estimator.FinalExporter(
    EXPORTER_NAME,
    lambda: inputs.serving_input_receiver_fn(tf_transform_output, args['task']['label']),
  )
  eval_spec = tf_estimator.EvalSpec(
    lambda: inputs.input_fn(fn_args.eval_files, tf_transform_output, batch_size, training=False),
    steps=fn_args.eval_steps,
    exporters=[exporter],
    name='eval',
    start_delay_secs=0,
    throttle_secs=args['throttle_secs'],
  )

  run_config = tf_estimator.RunConfig(
    model_dir=fn_args.serving_model_dir,
    save_checkpoints_steps=hp['checkpoint_steps'],
    save_checkpoints_secs=None if hp['checkpoint_steps'] else hp['checkpoint_secs'],
    # At least the number of replicas, so no one reads a deleted checkpoint.
    keep_checkpoint_max=5,
    save_summary_steps=100,
    log_step_count_steps=100,
  )  # the console shows progress from these lines
  estimator = model.build_estimator(
    hp['estimator'],
    run_config,
    hp['hidden_units'],
    float(hp['learning_rate']),
    warm_start_from=warm_start_settings(fn_args.base_model),
  )
  return {
    'estimator': estimator,
    'train_spec': train_spec,
    'eval_spec': eval_spec,
    'eval_input_receiver_fn': lambda: inputs.eval_input_receiver_fn(tf_transform_output),
  }
