"""One training replica: the user's `trainer_fn` under `tf.estimator.train_and_evaluate`.

The Trainer executor runs this in-process for a single-process Trainer, and
as `python -m components.replica` for each task of a cluster (local
processes or a Kubeflow TFJob). Its role comes from `TF_CONFIG`, exactly as
for any Estimator program, so the user's code is the same in every mode.
"""

import argparse
import ctypes
import dataclasses
import json
import logging
import os
import pathlib
import signal
import sys
import time
from typing import Any

from components import contract
from components.logs import tensorflow_logs_once

# The FnArgs fields a replica needs; the rest (e.g. data_accessor) are not
# used by Estimator trainer functions and cannot cross a process boundary.
FN_ARGS_FIELDS = (
  'working_dir',
  'train_files',
  'eval_files',
  'train_steps',
  'eval_steps',
  'schema_path',
  'schema_file',
  'transform_graph_path',
  'transform_output',
  'serving_model_dir',
  'eval_model_dir',
  'model_run_dir',
  'base_model',
  'hyperparameters',
  'custom_config',
)
# Written by the chief into the model directory when training ends.
STATS_FILE = 'training_stats.json'


@dataclasses.dataclass(frozen=True)
class ReplicaSpec:
  """What every replica of one Trainer execution runs: the function and its FnArgs."""

  trainer_fn: str  # dotted path, e.g. trainer_module.trainer_fn
  fn_args: dict[str, Any]

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> 'ReplicaSpec':
    return cls(**json.loads(text))

  @classmethod
  def from_fn_args(cls, trainer_fn: str, fn_args) -> 'ReplicaSpec':
    return cls(trainer_fn, {name: getattr(fn_args, name) for name in FN_ARGS_FIELDS})


def build_training(spec: ReplicaSpec, shard: dict | None = None) -> dict:
  """Calls the user's `trainer_fn`, with `shard` (num_shards, shard_index) in its
  ModuleArgs; returns its estimator, specs and eval receiver."""
  # Heavy imports here: the launcher imports this module without TF when it only spawns.
  from tensorflow_metadata.proto.v0 import schema_pb2
  from tfx.components.trainer.fn_args_utils import FnArgs
  from tfx.utils import import_utils, io_utils

  fields = dict(spec.fn_args)
  module_args = contract.load(contract.ModuleArgs, fields.get('custom_config'))
  fields['custom_config'] = contract.dump(module_args.copy(update=shard or {}))
  fn_args = FnArgs(**fields)
  module, _, name = spec.trainer_fn.rpartition('.')
  trainer_fn = import_utils.import_func_from_module(module, name)
  schema = io_utils.parse_pbtxt_file(fn_args.schema_file, schema_pb2.Schema())
  return trainer_fn(fn_args, schema)


def data_shard(tf_config: dict) -> dict:
  """`num_shards` and `shard_index` for this task: the chief and each worker
  read a disjoint share of the training records."""
  cluster, task = tf_config.get('cluster') or {}, tf_config.get('task') or {}
  trainers = len(cluster.get('chief', [])) + len(cluster.get('worker', []))
  if trainers <= 1 or task.get('type') not in ('chief', 'worker'):
    return {'num_shards': 1, 'shard_index': 0}
  index = 0 if task['type'] == 'chief' else len(cluster.get('chief', [])) + int(task['index'])
  return {'num_shards': trainers, 'shard_index': index}


def train(spec: ReplicaSpec) -> dict:
  """Runs `train_and_evaluate` for this process's role (from TF_CONFIG); returns
  the training spec."""
  from tensorflow import estimator as tf_estimator

  tensorflow_logs_once()
  training = build_training(spec, data_shard(json.loads(os.environ.get('TF_CONFIG') or '{}')))
  estimator = training['estimator']
  start = time.monotonic()
  tf_estimator.train_and_evaluate(estimator, training['train_spec'], training['eval_spec'])
  if estimator.config.is_chief:
    hparams = contract.load(contract.ModuleArgs, spec.fn_args.get('custom_config')).hparams
    batch_size = hparams.get('batch_size')
    _write_stats(
      estimator,
      training['train_spec'].max_steps,
      time.monotonic() - start,
      batch_size if isinstance(batch_size, int) else 0,
    )
  return training


def _write_stats(estimator, max_steps, seconds, batch_size):
  """Records the training throughput the chief saw (for users and `make bench`)."""
  import tensorflow as tf

  stats = {
    'train_steps': max_steps,
    'batch_size': batch_size or None,
    'seconds': round(seconds, 3),
    'steps_per_second': round(max_steps / seconds, 1) if seconds else None,
    # Only if hparams has an integer batch_size.
    'examples_per_second': (
      round(max_steps * batch_size / seconds, 1) if seconds and batch_size else None
    ),
  }
  with tf.io.gfile.GFile(os.path.join(estimator.model_dir, STATS_FILE), 'w') as f:
    f.write(json.dumps(stats))


def _die_with_parent(parent_pid: int):
  """Asks Linux to SIGKILL this process when its launcher dies, even by SIGKILL."""
  try:
    ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
  except OSError:
    return  # not Linux: the launcher's own cleanup still applies
  if os.getppid() != parent_pid:
    sys.exit('launcher exited before this replica started')


def main(argv=None):
  parser = argparse.ArgumentParser(prog='python -m components.replica', description=__doc__)
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument('--spec', help='file holding the replica spec JSON')
  source.add_argument('--spec-json', help='the replica spec JSON itself')
  parser.add_argument('--task', help='role label (type:index), shown in process lists and logs')
  parser.add_argument('--parent-pid', type=int, help='exit when this process dies')
  args = parser.parse_args(argv)
  if args.parent_pid:
    _die_with_parent(args.parent_pid)
  # Estimator's progress (loss and step, steps/sec, checkpoints) is INFO.
  logging.getLogger('tensorflow').setLevel(logging.INFO)
  text = pathlib.Path(args.spec).read_text() if args.spec else args.spec_json
  train(ReplicaSpec.from_json(text))


if __name__ == '__main__':
  main()
