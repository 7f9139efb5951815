"""The Estimator Trainer: TFX's estimator executor, warm-starting from the serving model.

Warm start is resolved here, at execution time, from the push destination
rather than by a Resolver node: OSS Kubeflow v2 cannot run Resolvers, and a
Resolver makes the Trainer's inputs change after every push, so a rerun with
nothing changed would retrain. Reading it here keeps the cache key to data,
code and config.
"""

import json
import os
import pathlib
import posixpath
import sys

import tensorflow as tf
import tensorflow_model_analysis as tfma
from absl import logging
from tfx.components.trainer import executor as trainer_executor
from tfx.utils import io_utils, path_utils

from components import cluster as cluster_lib
from components import contract, local_cluster, replica, serving, tfjob

# The push record's key for what a pushed model was trained with.
ARCHITECTURE_KEY = 'architecture'
# An evaluator task sleeps this long between evaluations (Estimator's default
# is 600 s, which would hold the cluster up to 10 minutes after the last step).
EVALUATOR_THROTTLE_SECS = 5
REPLICA_LOG_DIR = 'replicas'
# Custom properties of the Model artifact: the serving version it was
# warm-started from (-1: none), and why.
WARM_START_VERSION, WARM_START_NOTE = 'warm_start_version', 'warm_start_note'


class EstimatorTrainerExecutor(trainer_executor.Executor):
  """TFX's Estimator trainer, on one process or a cluster; `base_model` is the serving model.

  The single-process path is TFX's own (train_and_evaluate, then the chief
  exports the eval model and copies both models). On a cluster the exporters
  run in the evaluator task, if there is one, and TFX's executor would copy
  on the chief whatever is there; here the launcher waits for every replica
  and then exports both models itself from the final checkpoint, so exactly
  one of each reaches the Model artifact whatever the topology.
  """

  def _GetFnArgs(self, input_dict, output_dict, exec_properties):
    """TFX's FnArgs, with our payload parsed: `custom_config` becomes the
    user-facing ModuleArgs and `base_model` the serving model to warm-start from."""
    fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
    payload = contract.load(contract.TrainerPayload, fn_args.custom_config)
    fn_args.custom_config = contract.dump(payload.module_args)
    self._warm_start = (None, 'disabled (trainer.warm_start=false)')
    if not fn_args.base_model and payload.warm_start:
      self._warm_start = warm_start_model(payload.push_dir, payload.architecture)
      fn_args.base_model = self._warm_start[0].path if self._warm_start[0] else None
    self._payload = payload
    return fn_args

  def Do(self, input_dict, output_dict, exec_properties):
    self._log_startup(input_dict, output_dict, exec_properties)
    fn_args = self._GetFnArgs(input_dict, output_dict, exec_properties)
    cluster = self._payload.cluster
    mode = cluster.mode
    serving_dest, eval_dest = fn_args.serving_model_dir, fn_args.eval_model_dir
    run_dir = fn_args.model_run_dir
    model_root = run_dir
    if mode == 'kubeflow':
      # Every pod must reach the model directory; the launcher reads it afterwards.
      model_root = posixpath.join(cluster.shared_dir, *pathlib.PurePosixPath(run_dir).parts[-3:])
    fn_args.serving_model_dir = path_utils.serving_model_dir(model_root)
    fn_args.eval_model_dir = path_utils.eval_model_dir(model_root)
    trainer_fn = exec_properties.get('trainer_fn') or (
      exec_properties.get('module_path') and exec_properties['module_path'] + '.trainer_fn'
    )
    if not trainer_fn:
      raise ValueError(
        'the Trainer needs trainer_fn or module_path (a dotted module), '
        'not module_file: replicas import the user code by name'
      )

    if mode == 'none':
      logging.info('Training model in this process.')
      training = replica.train(replica.ReplicaSpec.from_fn_args(trainer_fn, fn_args))
      serving_source = path_utils.serving_model_path(model_root)
    else:
      fn_args.custom_config = contract.dump(
        self._payload.module_args.copy(update={'throttle_secs': EVALUATOR_THROTTLE_SECS})
      )
      spec = replica.ReplicaSpec.from_fn_args(trainer_fn, fn_args)
      run_cluster(mode, cluster, spec, run_dir)
      training = replica.build_training(spec)
      serving_source = export_final_model(training, os.path.join(model_root, 'final_export'))

    logging.info('Training complete; exporting the eval model for TFMA.')
    tfma.export.export_eval_savedmodel(
      estimator=training['estimator'],
      export_dir_base=fn_args.eval_model_dir,
      eval_input_receiver_fn=training['eval_input_receiver_fn'],
    )
    io_utils.copy_dir(serving_source, serving_dest)
    io_utils.copy_dir(path_utils.eval_model_path(model_root), eval_dest)
    logging.info('Serving model copied to %s; eval model to %s.', serving_dest, eval_dest)
    version, note = self._warm_start
    for model in output_dict['model']:
      model.set_int_custom_property(WARM_START_VERSION, version.version if version else -1)
      model.set_string_custom_property(WARM_START_NOTE, note)


def run_cluster(mode: str, cluster: contract.ClusterSpec, spec: replica.ReplicaSpec, run_dir: str):
  """Runs every replica of `spec` on a local or Kubeflow cluster until training is done."""
  topology = cluster_lib.Topology(
    workers=cluster.workers,
    parameter_servers=cluster.parameter_servers,
    evaluator=cluster.evaluator,
  )
  max_restarts, timeout_s = cluster.max_restarts, cluster.timeout_s
  logging.info('Training on a %s cluster: %s.', mode, topology)
  if mode == 'local':
    log_dir = pathlib.Path(run_dir) / REPLICA_LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    spec_file = log_dir / 'replica_spec.json'
    spec_file.write_text(spec.to_json())
    local = local_cluster.LocalCluster(
      cluster_lib.replica_command(sys.executable, '--spec', str(spec_file)),
      topology,
      log_dir,
      max_restarts=max_restarts,
      timeout_s=timeout_s,
      private_network=not cluster.expose,
    )
    local.run()
    return
  manifest = tfjob.tfjob_manifest(
    tfjob.job_name(run_dir),
    namespace=cluster.namespace or tfjob.pod_namespace(),
    image=cluster.image,
    spec_json=spec.to_json(),
    topology=topology,
    pvc=cluster.pvc,
    mount_path=cluster.mount_path,
    max_restarts=max_restarts,
    timeout_s=timeout_s,
    resources=cluster.resources,
  )
  tfjob.TFJobRunner(manifest).run()


def export_final_model(training: dict, export_base: str) -> str:
  """Runs the eval spec's exporters on the final checkpoint; returns the one export."""
  estimator = training['estimator']
  checkpoint = estimator.latest_checkpoint()
  if not checkpoint:
    raise cluster_lib.TrainingError(
      f'the cluster finished but left no checkpoint in {estimator.model_dir}'
    )
  exports = []
  for exporter in training['eval_spec'].exporters:
    path = exporter.export(
      estimator,
      os.path.join(export_base, exporter.name),
      checkpoint,
      eval_result={},
      is_the_final_export=True,
    )
    if path:
      exports.append(path.decode() if isinstance(path, bytes) else path)
  if len(exports) != 1:
    raise ValueError(
      f'expected exactly one exporter to export the serving model, got {len(exports)}'
    )
  logging.info('Exported the final checkpoint %s to %s.', checkpoint, exports[0])
  return exports[0]


def training_stats(model_run_dir: str) -> dict | None:
  """The chief's throughput record for a Trainer execution, if it wrote one."""
  path = os.path.join(path_utils.serving_model_dir(model_run_dir), replica.STATS_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.loads(f.read())


def architecture(module_args: contract.ModuleArgs) -> str:
  """What a saved model must share with a new one for its weights to be reused:
  the code (its fingerprint), the task and every hyperparameter except
  contract.TRAINING_ONLY_HPARAMS. New data alone keeps it; a code edit may
  change the variables, so it trains from scratch."""
  shaping = module_args.shaping().hparams
  return json.dumps(
    {
      'code': module_args.code_fingerprint,
      'hparams': shaping,
      'task': contract.dump(module_args.task),
    },
    sort_keys=True,
  )


def warm_start_model(
  push_dir: str | None, architecture: str | None
) -> tuple[serving.PushedVersion | None, str]:
  """The serving version to warm-start from if it has the same architecture
  (else None), and a note saying which or why not."""
  current = serving.latest(push_dir) if push_dir else None
  if current is None:
    base, note = None, 'no model is serving yet; trained from scratch'
  elif current.record.get(ARCHITECTURE_KEY) != architecture:
    base, note = (
      None,
      (
        f'serving version {current.version} has another architecture (code, '
        'task or shaping hparams changed); trained from scratch'
      ),
    )
  else:
    base, note = current, f'warm-started from serving version {current.version} ({current.path})'
  logging.info('Warm start: %s.', note)
  return base, note
