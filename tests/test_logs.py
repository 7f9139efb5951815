"""TensorFlow's log lines reach stderr once, whatever logged first."""

import subprocess
import sys

SCRIPT = """
import tensorflow as tf
from absl import logging as absl_logging
absl_logging.info('absl logs first')  # gives the root logger a handler, as TFX's import does
{fix}
tf.get_logger().setLevel('INFO')
tf.compat.v1.logging.info('loss = 0.5, step = 100')
"""


def _count_lines(fix: str) -> int:
  process = subprocess.run(
    [sys.executable, '-c', SCRIPT.format(fix=fix)], capture_output=True, text=True, timeout=120
  )
  assert process.returncode == 0, process.stderr[-2000:]
  return process.stderr.count('loss = 0.5, step = 100')


def test_tensorflow_lines_are_written_once():
  assert _count_lines('') == 2  # what TF and absl do on their own
  fix = 'from components.logs import tensorflow_logs_once; tensorflow_logs_once()'
  assert _count_lines(fix) == 1
