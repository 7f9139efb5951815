"""The push destination: TF Serving's layout, `<push_dir>/<version>/saved_model.pb`.

A version directory is complete before it appears: it is assembled under a
hidden temporary name and renamed into place, and a rename onto an existing
version fails, so versions never collide and always increase. Each version
also carries, in `assets.extra/` (which TF Serving ignores), the TFMA eval
SavedModel and a push record, so the model now serving can act as the
Evaluator's baseline and the Trainer's warm start without any Resolver node.
"""

import dataclasses
import errno
import json
import os
import shutil
import time
import uuid

PUSH_RECORD = os.path.join('assets.extra', 'push.json')
# Eval SavedModel of a pushed version, laid out as a TFX Model artifact's
# `Format-TFMA`, so `<version>/assets.extra` can stand in as a Model URI.
BASELINE_MODEL_URI = 'assets.extra'
EVAL_MODEL_DIR = os.path.join(BASELINE_MODEL_URI, 'Format-TFMA')


@dataclasses.dataclass(frozen=True)
class PushedVersion:
  version: int
  path: str
  record: dict

  @property
  def baseline_model_uri(self) -> str | None:
    """A Model-artifact URI whose Format-TFMA holds this version's eval model."""
    if os.path.exists(os.path.join(self.path, EVAL_MODEL_DIR, 'saved_model.pb')):
      return os.path.join(self.path, BASELINE_MODEL_URI)
    return None


def versions(push_dir: str) -> list[int]:
  """Complete versions under `push_dir`, oldest first."""
  if not os.path.isdir(push_dir):
    return []
  return sorted(
      int(name) for name in os.listdir(push_dir)
      if name.isdigit() and os.path.exists(os.path.join(push_dir, name, 'saved_model.pb')))


def latest(push_dir: str) -> PushedVersion | None:
  """The version TF Serving would serve now (the highest), or None."""
  found = versions(push_dir)
  if not found:
    return None
  path = os.path.join(push_dir, str(found[-1]))
  record = {}
  try:
    with open(os.path.join(path, PUSH_RECORD)) as f:
      record = json.load(f)
  except (OSError, ValueError):
    pass  # a version pushed by something else; still the one serving
  return PushedVersion(found[-1], path, record)


def push(serving_model: str, eval_model: str | None, push_dir: str, record: dict) -> PushedVersion:
  """Publishes a serving SavedModel as a new version, atomically.

  Args:
    serving_model: directory of the serving SavedModel.
    eval_model: directory of the TFMA eval SavedModel, kept for baselines.
    push_dir: the serving directory TF Serving watches.
    record: facts about the model, stored as the version's push record.

  Returns:
    The new version.
  """
  if '://' in push_dir:
    raise ValueError(f'push destination {push_dir}: must be a local or mounted path; '
                     'the push is an atomic rename, which object stores do not offer')
  from tfx.utils import io_utils  # copies from gs:// or s3:// artifacts too

  os.makedirs(push_dir, exist_ok=True)
  staging = os.path.join(push_dir, f'.incoming-{uuid.uuid4().hex}')
  try:
    io_utils.copy_dir(serving_model, staging)
    if eval_model:
      io_utils.copy_dir(eval_model, os.path.join(staging, EVAL_MODEL_DIR))
    # Unix time as version (TFX's convention), but always above the newest.
    version = max(int(time.time()), max(versions(push_dir), default=0) + 1)
    while True:
      target = os.path.join(push_dir, str(version))
      full_record = {**record, 'version': version, 'pushed_at': time.time()}
      os.makedirs(os.path.join(staging, 'assets.extra'), exist_ok=True)
      with open(os.path.join(staging, PUSH_RECORD), 'w') as f:
        json.dump(full_record, f, indent=2, sort_keys=True)
      try:
        os.rename(staging, target)  # atomic; fails if that version exists
        return PushedVersion(version, target, full_record)
      except OSError as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
          raise
        version += 1  # another push took this version in the same second
  finally:
    shutil.rmtree(staging, ignore_errors=True)


def load_predictor(saved_model_dir: str, output: str = 'logistic'):
  """A function from serialized raw tf.Examples to the model's `output`, for a pushed model.

  It calls the 'predict' signature (which Estimators export with every
  prediction), or 'serving_default' (all a Keras-made Estimator exports).
  Single-valued outputs come back as one value per example.
  """
  import tensorflow as tf

  loaded = tf.saved_model.load(saved_model_dir)
  signature = loaded.signatures.get('predict') or loaded.signatures['serving_default']
  (input_name,) = signature.structured_input_signature[1].keys()

  def predict(serialized_examples):
    outputs = signature(**{input_name: tf.constant(list(serialized_examples))})
    if output not in outputs:
      raise KeyError(f'the model has no output {output!r}; it has {", ".join(sorted(outputs))}')
    values = outputs[output].numpy()
    return values.reshape(-1) if values.ndim == 2 and values.shape[1] == 1 else values

  predict.saved_model = loaded  # keeps the model alive as long as the function
  return predict
