"""TensorFlow's log lines, written once."""

import logging


def tensorflow_logs_once() -> logging.Logger:
  """Stops the 'tensorflow' logger's records reaching the root logger's handler
  when TF writes them itself; returns the logger.

  TF gives its logger a stderr handler of its own if the root logger has none
  when TF is imported; absl's first log call (TFX and TFMA log at import)
  then gives the root logger one too, and every TF line, the Estimator's
  progress included, was written twice.
  """
  import tensorflow as tf

  logger = tf.get_logger()
  if any(type(handler) is logging.StreamHandler for handler in logger.handlers):
    logger.propagate = False
  return logger
