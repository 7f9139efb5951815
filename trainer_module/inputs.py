"""Input functions: training data for the Estimator, raw tf.Examples for serving and TFMA."""

import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
from tensorflow import estimator as tf_estimator

from trainer_module.features import FEATURES, LABEL_KEY, transformed_name

AUTOTUNE = tf.data.AUTOTUNE


# Rows parsed and transformed at a time. In graph mode (the Estimator's) the
# Transform graph's vocabulary tables are initialised at every call of the
# map function, so doing it per training batch would cost a table load a step.
TRANSFORM_BATCH = 1024


def input_fn(
  file_pattern,
  tf_transform_output: tft.TFTransformOutput,
  batch_size: int,
  *,
  training: bool,
  num_shards: int = 1,
  shard_index: int = 0,
  shuffle_seed=None,
) -> tf.data.Dataset:
  """A dataset of (features, label) batches: ExampleGen's raw gzipped
  tf.Examples, transformed by the Transform graph as they are read.

  Transform writes no transformed copy of the data: training reads a few
  batches of it, where writing it would cost a pass over every row.

  Args:
    file_pattern: a glob or list of globs of raw example files.
    tf_transform_output: the Transform graph's output (raw feature spec and graph).
    batch_size: examples per batch.
    training: shuffle and repeat forever (the Estimator stops at max_steps);
      otherwise one deterministic pass.
    num_shards: number of training replicas reading the same files.
    shard_index: which of those replicas this one is; it keeps every
      `num_shards`-th record so replicas see disjoint data.
    shuffle_seed: seed of the shuffles, for reproducible tests.

  Returns:
    A `tf.data.Dataset` of `(features, label)`, features keyed by transformed name.
  """
  raw_spec = tf_transform_output.raw_feature_spec()
  files = tf.data.Dataset.list_files(file_pattern, shuffle=training, seed=shuffle_seed)
  records = files.interleave(
    lambda f: tf.data.TFRecordDataset(f, compression_type='GZIP'),
    cycle_length=4,
    num_parallel_calls=AUTOTUNE,
    deterministic=not training,
  )
  if num_shards > 1:
    records = records.shard(num_shards, shard_index)
  if training:
    records = records.shuffle(10_000, seed=shuffle_seed).repeat()

  # AutoGraph would try to convert the Transform graph's loader: seconds of
  # tracing for a function without Python control flow.
  @tf.autograph.experimental.do_not_convert
  def transform(serialized):
    transformed = tf_transform_output.transform_raw_features(
      tf.io.parse_example(serialized, raw_spec), drop_unused_features=True
    )
    features = {transformed_name(key): transformed[transformed_name(key)] for key in FEATURES}
    return features, transformed[LABEL_KEY]

  dataset = (
    records.batch(TRANSFORM_BATCH)
    .map(transform, num_parallel_calls=AUTOTUNE, deterministic=not training)
    .rebatch(batch_size)
    .prefetch(AUTOTUNE)
  )
  # tf.data's autotuning model off (AUTOTUNE then means the core count): with
  # it on, TF 2.15 often stalls for seconds while closing the Estimator's
  # training session, and training is no faster.
  options = tf.data.Options()
  options.autotune.enabled = False
  return dataset.with_options(options)


def serving_input_receiver_fn(tf_transform_output: tft.TFTransformOutput, label: str):
  """Serving input: a batch of raw serialized tf.Examples without the `label`
  column (unknown at serving time), transformed in-graph."""
  spec = {k: v for k, v in tf_transform_output.raw_feature_spec().items() if k != label}
  raw_input_fn = tf_estimator.export.build_parsing_serving_input_receiver_fn(
    spec, default_batch_size=None
  )
  receiver = raw_input_fn()
  transformed = tf_transform_output.transform_raw_features(
    receiver.features, drop_unused_features=True
  )
  features = {transformed_name(key): transformed[transformed_name(key)] for key in FEATURES}
  return tf_estimator.export.ServingInputReceiver(features, receiver.receiver_tensors)


def eval_input_receiver_fn(tf_transform_output: tft.TFTransformOutput):
  """TFMA's input: raw serialized tf.Examples, with raw features kept for slicing."""
  serialized = tf.compat.v1.placeholder(dtype=tf.string, shape=[None], name='input_example_tensor')
  raw = tf.io.parse_example(serialized, tf_transform_output.raw_feature_spec())
  transformed = tf_transform_output.transform_raw_features(raw, drop_unused_features=True)
  features = dict(raw)
  features.update(transformed)
  return tfma.export.EvalInputReceiver(
    features=features,
    receiver_tensors={'examples': serialized},  # TFMA requires this key
    labels=transformed[LABEL_KEY],
  )
