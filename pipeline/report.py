"""The run summary: component states, eval metrics, blessing and push, from MLMD."""

import os

from components import serving
from pipeline.config import Config

# Component states in the summary.
EXECUTED, CACHED, FAILED, SKIPPED = 'executed', 'cached', 'failed', 'skipped'

COMPONENTS = ('CsvExampleGen', 'StatisticsGen', 'SchemaGen', 'ExampleValidator',
              'Transform', 'Trainer', 'Evaluator', 'Pusher')
# Summary names of the MLMD execution states (metadata_store_pb2.Execution.State).
_STATES = {'COMPLETE': EXECUTED, 'CACHED': CACHED, 'FAILED': FAILED}
# Summary names of TFMA's metric names.
_SUMMARY_NAMES = {'binary_accuracy': 'accuracy'}


def output_artifacts(store, execution_id):
  """Output artifacts of an execution, by output key."""
  from ml_metadata.proto import metadata_store_pb2
  events = [e for e in store.get_events_by_execution_ids([execution_id])
            if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
  artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
  result = {}
  for e in events:
    key = e.path.steps[0].key if e.path.steps else ''
    if e.artifact_id in artifacts:
      result[key] = artifacts[e.artifact_id]
  return result


def _prop(artifact, name):
  value = artifact.custom_properties.get(name)
  if value is None:
    return None
  return value.string_value or value.int_value


def open_store(metadata_path):
  """The ML Metadata store of a pipeline's SQLite file."""
  from ml_metadata import metadata_store
  from tfx.orchestration import metadata
  return metadata_store.MetadataStore(
      metadata.sqlite_metadata_connection_config(str(metadata_path)))


def executions_by_node(store, run_context) -> dict:
  """The executions of one pipeline run (a 'pipeline_run' context), by node id."""
  in_run = {e.id for e in store.get_executions_by_context(run_context.id)}
  return {node.name.split('.', 1)[-1]: execution
          for node in store.get_contexts_by_type('node')
          for execution in store.get_executions_by_context(node.id)
          if execution.id in in_run}


def execution_seconds(execution) -> float:
  return (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000


def collect(config: Config, run_id: str, timings: dict) -> dict:
  """Component states and timings, metrics, blessing and push of run `run_id`."""
  components = {name: {'name': name, 'state': SKIPPED, 'seconds': 0.0} for name in COMPONENTS}
  for name, (state, seconds) in timings.items():
    components.setdefault(name, {'name': name})
    components[name].update(state=state, seconds=round(seconds, 2))
  current = serving.latest(str(config.push_dir))
  result = {'metrics': {}, 'blessed': False, 'pushed_path': None, 'pushed_version': None,
            'serving_path': os.path.abspath(current.path) if current else None,
            'blessing_reason': None}
  # A run stopped before any component ran has nothing in MLMD (nor needs its imports).
  run = None
  if config.metadata_path.exists() and timings:
    store = open_store(config.metadata_path)
    run = store.get_context_by_type_and_name('pipeline_run', run_id)
  if run is not None:
    from ml_metadata.proto import metadata_store_pb2
    for name, execution in executions_by_node(store, run).items():
      entry = components.setdefault(name, {'name': name, 'seconds': 0.0})
      state_name = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
      entry['state'] = _STATES.get(state_name, entry.get('state', SKIPPED))
      if entry['seconds'] == 0.0:
        entry['seconds'] = round(execution_seconds(execution), 2)
      outputs = output_artifacts(store, execution.id)
      if name == 'Evaluator':
        _add_evaluation(result, outputs, config)
      elif name == 'Trainer' and 'model_run' in outputs:
        _add_training(result, outputs)
      elif name == 'Pusher' and 'pushed_model' in outputs and entry['state'] == EXECUTED:
        pushed = outputs['pushed_model']
        if _prop(pushed, 'pushed') == 1:
          result['pushed_path'] = os.path.abspath(_prop(pushed, 'pushed_destination'))
          result['pushed_version'] = int(_prop(pushed, 'pushed_version'))
  return {'components': list(components.values()), **result}


def _add_training(result, outputs):
  from components.training import training_stats

  model_run = outputs['model_run'].uri
  result['training'] = {'model_run': model_run,
                        'model': outputs['model'].uri if 'model' in outputs else None,
                        **(training_stats(model_run) or {})}


def _add_evaluation(result, outputs, config):
  if 'evaluation' in outputs:
    uri = outputs['evaluation'].uri
    if os.path.exists(uri):
      result['metrics'], result['baseline_metrics'], result['slices'] = _metrics(uri)
      result['blessing_reason'] = _reason(uri, result, config)
  if 'blessing' in outputs:
    result['blessed'] = _prop(outputs['blessing'], 'blessed') == 1


def _metrics(uri):
  import tensorflow_model_analysis as tfma

  from components.evaluation import METRICS

  overall, baseline, slices = {}, {}, {}
  for per_slice in tfma.load_metrics(uri):
    slice_name = ','.join(f'{k.column}={k.int64_value or k.bytes_value.decode() or k.float_value}'
                          for k in per_slice.slice_key.single_slice_keys)
    for kv in per_slice.metric_keys_and_values:
      # Only TFMA's metrics (they carry example_weighted); estimators export
      # same-named ones of their own.
      if (kv.key.name not in METRICS or kv.key.is_diff or kv.key.HasField('sub_key')
          or not kv.key.HasField('example_weighted')):
        continue
      value = kv.value.double_value.value
      name = _SUMMARY_NAMES.get(kv.key.name, kv.key.name)
      if kv.key.model_name == 'baseline':
        if not slice_name:
          baseline[name] = value
      elif not slice_name:
        overall[name] = value
      else:
        slices.setdefault(slice_name, {})[name] = value
  if 'example_count' in overall:
    overall['example_count'] = int(overall['example_count'])
  return overall, baseline, dict(sorted(slices.items()))


def _reason(uri, result, config):
  import tensorflow_model_analysis as tfma

  validation = tfma.load_validation_result(uri)
  auc = result['metrics'].get('auc')
  base = result['baseline_metrics'].get('auc')
  if validation.validation_ok:
    text = f'AUC {auc:.4f} >= min_auc {config.evaluator.min_auc}'
    if base is not None:
      text += f' and not worse than the serving model (AUC {base:.4f}) by more than {config.evaluator.max_auc_drop}'
    else:
      text += '; no model was serving, so no change threshold applied'
    return text
  failures = [_failure_text(f) for per_slice in validation.metric_validations_per_slice
              for f in per_slice.failures]
  return 'not blessed: ' + ('; '.join(failures) or 'validation failed')


def _failure_text(failure) -> str:
  name = failure.metric_key.name
  value = failure.metric_value.double_value.value
  threshold = failure.metric_threshold
  if failure.metric_key.is_diff:
    allowed = threshold.change_threshold.absolute.value
    return (f'{name} is {-value:.4f} below the serving model\'s '
            f'(allowed drop {max(0.0, -allowed):.4f})')
  if threshold.HasField('value_threshold'):
    return f'{name} {value:.4f} < {threshold.value_threshold.lower_bound.value}'
  return failure.message or name
