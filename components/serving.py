"""The push destination: TF Serving's layout, `<push_dir>/<version>/saved_model.pb`.

A version directory is complete before it appears: it is assembled under a
hidden temporary name and renamed into place, and a rename onto an existing
version fails, so versions never collide and always increase. Each version
also carries, in `assets.extra/` (which TF Serving ignores), the TFMA eval
SavedModel and a push record, so the model now serving can act as the
Evaluator's baseline and the Trainer's warm start without any Resolver node.
"""

import contextlib
import dataclasses
import errno
import functools
import json
import logging
import os
import shutil
import time
import uuid

from components import file_list, file_lock

_LOG = logging.getLogger(__name__)

PUSH_RECORD = os.path.join('assets.extra', 'push.json')
# Eval SavedModel of a pushed version, laid out as a TFX Model artifact's
# `Format-TFMA`, so `<version>/assets.extra` can stand in as a Model URI.
BASELINE_MODEL_URI = 'assets.extra'
EVAL_MODEL_DIR = os.path.join(BASELINE_MODEL_URI, 'Format-TFMA')
PUSH_LOCK = '.push.lock'
# A version is copied under this prefix, then renamed into place.
_STAGING = '.incoming-'
# Where damaged versions are moved; TF Serving ignores a name that is not a number.
DAMAGED_DIR = '.damaged'


@dataclasses.dataclass(frozen=True)
class PushedVersion:
  version: int
  path: str
  record: dict

  @property
  def baseline_model_uri(self) -> str | None:
    """A Model-artifact URI whose Format-TFMA holds this version's eval model,
    or None if it has none or it is damaged."""
    eval_model = os.path.join(self.path, EVAL_MODEL_DIR)
    if not os.path.exists(eval_model):
      return None
    files = self.record.get('files')
    problem = saved_model_problem(eval_model, signature=None) or (
      file_list.problem(self.path, files, 'pushed', lambda f: f.startswith(EVAL_MODEL_DIR + os.sep))
      if isinstance(files, dict)
      else None
    )
    if problem:
      _LOG.warning(
        'Serving version %d: its eval model %s is damaged (%s); no comparison with it is possible.',
        self.version,
        eval_model,
        problem,
      )
      return None
    return os.path.join(self.path, BASELINE_MODEL_URI)


class StaleBaselineError(RuntimeError):
  """The serving version changed after the candidate was compared with it."""


@functools.cache
def _saved_model_message():
  """TF's `SavedModel` message (a schema version and `MetaGraphDef`s), over
  TensorBoard's copy of `MetaGraphDef`, the same fields under another package.
  TF's own `saved_model_pb2` imports all of TensorFlow (seconds), which a run
  that checks its serving versions and then stops at a bad CSV file, or a
  rollback, would otherwise pay."""
  from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
  from tensorboard.compat.proto import meta_graph_pb2

  field = descriptor_pb2.FieldDescriptorProto
  file = descriptor_pb2.FileDescriptorProto(
    name='components/saved_model.proto',
    package='components',
    syntax='proto3',
    dependency=[meta_graph_pb2.DESCRIPTOR.name],
  )
  message = file.message_type.add(name='SavedModel')
  message.field.add(
    name='saved_model_schema_version', number=1, type=field.TYPE_INT64, label=field.LABEL_OPTIONAL
  )
  message.field.add(
    name='meta_graphs',
    number=2,
    type=field.TYPE_MESSAGE,
    label=field.LABEL_REPEATED,
    type_name='.' + meta_graph_pb2.MetaGraphDef.DESCRIPTOR.full_name,
  )
  pool = descriptor_pool.Default()
  pool.AddSerializedFile(file.SerializeToString())
  return message_factory.MessageFactory(pool).GetPrototype(
    pool.FindMessageTypeByName('components.SavedModel')
  )


def saved_model_problem(path: str, signature: str | None = 'serving_default') -> str | None:
  """What is wrong with the SavedModel at `path`, or None if it parses and has `signature`."""
  from google.protobuf.message import DecodeError

  try:
    with open(os.path.join(path, 'saved_model.pb'), 'rb') as f:
      data = f.read()
  except OSError:
    return 'saved_model.pb is missing'
  model = _saved_model_message()()
  try:
    model.ParseFromString(data)
  except DecodeError:
    return 'saved_model.pb does not parse'
  if not model.meta_graphs:
    return 'saved_model.pb holds no graph'
  if signature and not any(signature in graph.signature_def for graph in model.meta_graphs):
    return f'saved_model.pb has no {signature!r} signature'
  return None


def _variables_problem(path: str) -> str | None:
  """For a version with no file list (pushed by another tool): are the
  variables the index names all there?"""
  folder = os.path.join(path, 'variables')
  names = os.listdir(folder) if os.path.isdir(folder) else []
  shards = [n for n in names if n.startswith('variables.data-')]
  if 'variables.index' not in names:
    return 'variables/variables.index is missing' if shards else None
  total = int(shards[0].rsplit('-of-', 1)[1]) if shards else 1
  for shard in range(total):
    name = f'variables.data-{shard:05d}-of-{total:05d}'
    if name not in names:
      return f'variables/{name} is missing'
  return None


def version_problem(path: str) -> str | None:
  """What keeps the version at `path` from loading, or None if it is intact.

  Cheap, with no TensorFlow load: its saved_model.pb parses and has the
  serving signature, and every file the push recorded is there with its
  size (or, for a version pushed by another tool, every variables shard).
  """
  problem = saved_model_problem(path)
  if problem:
    return problem
  files = push_record(path).get('files')
  if not isinstance(files, dict):
    return _variables_problem(path)
  # TF Serving never reads assets.extra/ (the eval model: see baseline_model_uri).
  return file_list.problem(
    path, files, 'pushed', lambda f: not f.startswith(BASELINE_MODEL_URI + os.sep)
  )


def versions(push_dir: str) -> list[int]:
  """Every version directory under `push_dir`, intact or not, oldest first
  (not those `set_aside` moved)."""
  if not os.path.isdir(push_dir):
    return []
  return sorted(
    int(name)
    for name in os.listdir(push_dir)
    if name.isdigit() and os.path.isdir(os.path.join(push_dir, name))
  )


def damaged(push_dir: str) -> list[tuple[int, str, str]]:
  """(version, path, problem) of every version newer than the newest intact one:
  those passed over by `latest`."""
  found = []
  for version in reversed(versions(push_dir)):
    path = os.path.join(push_dir, str(version))
    problem = version_problem(path)
    if not problem:
      break
    found.append((version, path, problem))
  return found


def set_aside(push_dir: str) -> list[tuple[int, str, str]]:
  """Moves every damaged version newer than the newest intact one into
  `<push_dir>/.damaged/` (kept, never deleted), so TF Serving, which serves
  the highest number it finds, serves the intact one. Returns (version,
  where it now is, problem) of each."""
  if not damaged(push_dir):
    return []
  moved = []
  with _push_lock(push_dir):
    for version, path, problem in damaged(push_dir):
      target = os.path.join(push_dir, DAMAGED_DIR, str(version))
      os.makedirs(os.path.dirname(target), exist_ok=True)
      suffix = 1
      while os.path.exists(target):
        target = os.path.join(push_dir, DAMAGED_DIR, f'{version}-{suffix}')
        suffix += 1
      os.rename(path, target)
      moved.append((version, target, problem))
  return moved


def remove_staging(push_dir: str) -> list[str]:
  """Removes the half-copied versions (`.incoming-*`) a killed push left
  behind; returns their paths. Callers hold the serving directory's run
  lock, so no push is under way."""
  if not os.path.isdir(push_dir):
    return []
  removed = []
  with _push_lock(push_dir):
    for name in sorted(os.listdir(push_dir)):
      if name.startswith(_STAGING):
        shutil.rmtree(os.path.join(push_dir, name), ignore_errors=True)
        removed.append(os.path.join(push_dir, name))
  return removed


def set_aside_versions(push_dir: str) -> list[tuple[int, str, str]]:
  """(version, path, problem) of every version `set_aside` moved, oldest first."""
  folder = os.path.join(push_dir, DAMAGED_DIR)
  if not os.path.isdir(folder):
    return []
  found = []
  for name in os.listdir(folder):
    path = os.path.join(folder, name)
    if os.path.isdir(path) and name.split('-')[0].isdigit():
      found.append((int(name.split('-')[0]), path, version_problem(path) or 'set aside'))
  return sorted(found)


def latest(push_dir: str) -> PushedVersion | None:
  """The newest intact version (what serves now), or None. Damaged newer
  versions are passed over, with a warning naming them."""
  passed_over = damaged(push_dir)
  for version, path, problem in passed_over:
    _LOG.warning('Serving version %d at %s is damaged (%s); passed over.', version, path, problem)
  intact = [v for v in versions(push_dir) if v not in {d[0] for d in passed_over}]
  if not intact:
    return None
  path = os.path.join(push_dir, str(intact[-1]))
  return PushedVersion(intact[-1], path, push_record(path))


def push_record(version_path: str) -> dict:
  """A version's push record; empty for a version pushed by something else."""
  try:
    with open(os.path.join(version_path, PUSH_RECORD)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


@contextlib.contextmanager
def _push_lock(push_dir: str):
  """Serialises pushes to `push_dir` across processes (released if the process dies)."""
  fd = file_lock.acquire(os.path.join(push_dir, PUSH_LOCK))
  try:
    yield
  finally:
    os.close(fd)


def push(
  serving_model: str,
  eval_model: str | None,
  push_dir: str,
  record: dict,
  expected_serving: int | None = None,
) -> PushedVersion:
  """Publishes a serving SavedModel as a new version, atomically.

  Args:
    serving_model: directory of the serving SavedModel.
    eval_model: directory of the TFMA eval SavedModel, kept for baselines.
    push_dir: the serving directory TF Serving watches.
    record: facts about the model, stored as the version's push record.
    expected_serving: compare-and-swap: the version that must still be the
      one serving (0: none), the one the candidate was compared with.

  Returns:
    The new version.

  Raises:
    StaleBaselineError: another version serves now than `expected_serving`.
  """
  if '://' in push_dir:
    raise ValueError(
      f'push destination {push_dir}: must be a local or mounted path; '
      'the push is an atomic rename, which object stores do not offer'
    )
  from tfx.utils import io_utils  # copies from gs:// or s3:// artifacts too

  os.makedirs(push_dir, exist_ok=True)
  staging = os.path.join(push_dir, f'{_STAGING}{uuid.uuid4().hex}')
  try:
    io_utils.copy_dir(serving_model, staging)
    if eval_model:
      io_utils.copy_dir(eval_model, os.path.join(staging, EVAL_MODEL_DIR))
    with _push_lock(push_dir):
      if expected_serving is not None:
        current = latest(push_dir)
        now = current.version if current else 0
        if now != expected_serving:
          raise StaleBaselineError(
            f'serving version {now or "(none)"} is not the one the candidate was compared '
            f'with ({expected_serving or "none serving"}); the next run compares against it'
          )
      return _rename_into_place(staging, push_dir, record)
  finally:
    shutil.rmtree(staging, ignore_errors=True)


def republish(push_dir: str, version: int, expected_serving: int, record: dict) -> PushedVersion:
  """Makes `version` serve again by publishing a copy of it as a new, highest
  version (TF Serving serves the highest), with the same atomic rename and
  compare-and-swap as a push; `record` is added to its push record.

  Raises:
    ValueError: `version` does not exist or is damaged.
    StaleBaselineError: `expected_serving` no longer serves.
  """
  source = os.path.join(push_dir, str(version))
  if version not in versions(push_dir):
    raise ValueError(
      f'version {version} is not in {push_dir} '
      f'(versions: {", ".join(map(str, versions(push_dir))) or "none"})'
    )
  problem = version_problem(source)
  if problem:
    raise ValueError(f'version {version} at {source} is damaged ({problem}); it cannot serve')
  original = push_record(source)
  staging = os.path.join(push_dir, f'{_STAGING}{uuid.uuid4().hex}')
  try:
    shutil.copytree(source, staging)
    with _push_lock(push_dir):
      current = latest(push_dir)
      now = current.version if current else 0
      if now != expected_serving:
        raise StaleBaselineError(
          f'serving version {now or "(none)"} is not {expected_serving} '
          'any more; look again before rolling back'
        )
      return _rename_into_place(staging, push_dir, {**original, **record})
  finally:
    shutil.rmtree(staging, ignore_errors=True)


def _rename_into_place(staging: str, push_dir: str, record: dict) -> PushedVersion:
  # Unix time as version (TFX's convention), but always above the newest.
  # Above every version, those set aside too: a number is never reused.
  taken = versions(push_dir) + [v for v, _, _ in set_aside_versions(push_dir)]
  version = max(int(time.time()), max(taken, default=0) + 1)
  files = file_list.files(staging, skip=(PUSH_RECORD,))
  while True:
    target = os.path.join(push_dir, str(version))
    # The file list makes a later damage (a deleted variables shard) visible
    # without loading the model.
    full_record = {**record, 'version': version, 'pushed_at': time.time(), 'files': files}
    os.makedirs(os.path.join(staging, 'assets.extra'), exist_ok=True)
    with open(os.path.join(staging, PUSH_RECORD), 'w') as f:
      json.dump(full_record, f, indent=2, sort_keys=True)
    try:
      os.rename(staging, target)  # atomic; fails if that version exists
      return PushedVersion(version, target, full_record)
    except OSError as e:
      if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
        raise
      version += 1  # a version of that number exists (pushed by another tool)


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
