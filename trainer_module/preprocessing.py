"""tf.Transform preprocessing: raw taxi features to model inputs and label."""

import tensorflow as tf
import tensorflow_transform as tft

from trainer_module.features import (
  FARE_KEY,
  FEATURES,
  LABEL_KEY,
  OOV_BUCKETS,
  Kind,
  transformed_name,
)


def _dense(x, default):
  """Returns a rank-1 dense tensor from a rank-2 sparse one, `default` where missing."""
  if not isinstance(x, tf.sparse.SparseTensor):
    return tf.reshape(x, [-1])
  return tf.squeeze(
    tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default), axis=1
  )


def _missing(x):
  """True for the rows where a sparse feature has no value."""
  if not isinstance(x, tf.sparse.SparseTensor):
    return tf.zeros_like(tf.reshape(x, [-1]), dtype=tf.bool)
  present = tf.SparseTensor(x.indices, tf.ones_like(x.values, tf.bool), [x.dense_shape[0], 1])
  return tf.logical_not(tf.squeeze(tf.sparse.to_dense(present, False), axis=1))


def _values(x):
  return x.values if isinstance(x, tf.sparse.SparseTensor) else tf.reshape(x, [-1])


def _numeric(x):
  # Fares, miles and durations are heavy-tailed; log1p keeps outliers in range.
  def log1p(v):
    return tf.math.log1p(tf.maximum(tf.cast(v, tf.float32), 0.0))

  present = log1p(_values(x))
  # Mean and variance over present values only; both analyzers run in one
  # phase (a second phase hits TFT 1.15's deep-copy bug on Beam 2.67).
  mean, var = tft.mean(present), tft.var(present)
  z = (log1p(_dense(x, 0)) - mean) / tf.sqrt(tf.maximum(var, 1e-12))
  return tf.where(_missing(x), tf.zeros_like(z), z)  # missing -> the mean


def _vocab(x, feature):
  default = '' if x.dtype == tf.string else -1
  return tft.compute_and_apply_vocabulary(
    _dense(x, default), top_k=feature.size, num_oov_buckets=OOV_BUCKETS
  )


def _bucket(x, feature):
  values = tf.cast(_values(x), tf.float32)
  boundaries = tft.quantiles(values, num_buckets=feature.size, epsilon=0.01)
  buckets = tft.apply_buckets(tf.cast(_dense(x, 0), tf.float32), boundaries)
  return tf.where(_missing(x), tf.cast(feature.size, tf.int64), buckets)


def _category(x, feature):
  ids = tf.clip_by_value(tf.cast(_dense(x, 0), tf.int64), 0, feature.size - 1)
  return tf.where(_missing(x), tf.cast(feature.size, tf.int64), ids)


_ENCODERS = {
  Kind.NUMERIC: lambda x, feature: _numeric(x),
  Kind.VOCAB: _vocab,
  Kind.BUCKET: _bucket,
  Kind.CATEGORY: _category,
}


def preprocessing_fn(inputs, custom_config):
  """tf.Transform callback: encodes every feature of FEATURES and adds the label.

  Args:
    inputs: raw features by name, as parsed with the pipeline schema.
    custom_config: the pipeline's ModuleArgs; `task.label` names the tips column.

  Returns:
    Transformed features (named by `transformed_name`) and the int64 label.
  """
  outputs = {
    transformed_name(key): _ENCODERS[feature.kind](inputs[key], feature)
    for key, feature in FEATURES.items()
  }
  fare = _dense(inputs[FARE_KEY], float('nan'))
  tips = _dense(inputs[custom_config['task']['label']], 0.0)
  big_tipper = tf.logical_and(tf.logical_not(tf.math.is_nan(fare)), tf.greater(tips, 0.2 * fare))
  outputs[LABEL_KEY] = tf.cast(big_tipper, tf.int64)
  return outputs
