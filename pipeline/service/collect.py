"""The run summary: component states, eval metrics, blessing and push, from MLMD."""

import json
import os

from components import ids, serving
from components.contract import CHANGE_KEY
from pipeline.config import Config
from pipeline.record import CACHED, EXECUTED, FAILED, SKIPPED
from pipeline.service import mlmd

# Summary names of the MLMD execution states (metadata_store_pb2.Execution.State).
_STATES = {'COMPLETE': EXECUTED, 'CACHED': CACHED, 'FAILED': FAILED}


def collect(config: Config, run_id: str, timings: dict) -> dict:
  """Component states and timings, metrics, blessing and push of run `run_id`."""
  components = {name: {'name': name, 'state': SKIPPED, 'seconds': 0.0} for name in ids.ALL}
  for name, (state, seconds) in timings.items():
    components.setdefault(name, {'name': name})
    components[name].update(state=state, seconds=round(seconds, 2))
  current = serving.latest(config.push_dir)
  result = {
    'metrics': {},
    'blessed': False,
    'pushed_path': None,
    'pushed_version': None,
    'not_pushed_reason': None,
    'serving_path': os.path.abspath(current.path) if current else None,
    'blessing_reason': None,
  }
  # A run stopped before any component ran has nothing in MLMD (nor needs its imports).
  run = None
  if config.metadata_path.exists() and timings:
    store = mlmd.open_store(config.metadata_path)
    run = mlmd.run_context(store, run_id)
  if run is not None:
    for name, execution in mlmd.executions_by_node(store, run).items():
      entry = components.setdefault(name, {'name': name, 'seconds': 0.0})
      state_name = mlmd.state_name(execution)
      entry['state'] = _STATES.get(state_name, entry.get('state', SKIPPED))
      if entry['seconds'] == 0.0:
        entry['seconds'] = round(mlmd.execution_seconds(execution), 2)
      outputs = mlmd.output_artifacts(store, execution.id)
      result.setdefault('artifacts', {}).update({key: a.uri for key, a in outputs.items()})
      if name == ids.EXAMPLE_GEN and 'examples' in outputs:
        _add_data(result, outputs['examples'])
      elif name == ids.EXAMPLE_VALIDATOR and 'anomalies' in outputs:
        _add_drift(result, outputs['anomalies'])
      elif name == ids.EVALUATOR:
        _add_evaluation(result, outputs, config)
      elif name == ids.TRAINER and 'model_run' in outputs:
        _add_training(result, outputs)
      elif name == ids.PUSHER and 'pushed_model' in outputs and entry['state'] == EXECUTED:
        pushed = outputs['pushed_model']
        result['not_pushed_reason'] = mlmd.prop(pushed, 'not_pushed_reason') or None
        if mlmd.prop(pushed, 'pushed') == 1:
          result['pushed_path'] = os.path.abspath(mlmd.prop(pushed, 'pushed_destination'))
          result['pushed_version'] = int(mlmd.prop(pushed, 'pushed_version'))
  return {'components': list(components.values()), **result}


def _add_data(result, examples):
  """Which spans the run read: trained on, evaluated on, compared with."""
  import json

  from components.example_gen import SPANS_PROPERTY

  read = mlmd.prop(examples, SPANS_PROPERTY)
  result['spans'] = json.loads(read) if read else None


def _add_drift(result, anomalies):
  """The drift gate's measurements (none with a single span)."""
  import json

  from components.validation import DRIFT_FILE

  path = os.path.join(anomalies.uri, DRIFT_FILE)
  if os.path.exists(path):
    with open(path) as f:
      result['drift'] = json.load(f)


def _add_training(result, outputs):
  from components.training import WARM_START_NOTE, WARM_START_VERSION, training_stats

  model_run = outputs['model_run'].uri
  model = outputs.get('model')
  warm = mlmd.prop(model, WARM_START_VERSION) if model else None
  result['training'] = {
    'model_run': model_run,
    'model': model.uri if model else None,
    'warm_start_version': None if warm in (None, -1) else warm,
    'warm_start': mlmd.prop(model, WARM_START_NOTE) if model else None,
    **(training_stats(model_run) or {}),
  }


def _add_evaluation(result, outputs, config):
  if 'evaluation' in outputs:
    uri = outputs['evaluation'].uri
    if os.path.exists(uri):
      result.update(_metrics(uri, config))
      change = mlmd.prop(outputs['blessing'], CHANGE_KEY) if 'blessing' in outputs else None
      result['gate'] = _gate(uri, result, config, json.loads(change) if change else None)
      result['blessing_reason'] = result['gate']['reason']
  if 'blessing' in outputs:
    result['blessed'] = mlmd.prop(outputs['blessing'], 'blessed') == 1


def _slice_value(key):
  """A slice key's value: text, or a number (TFMA stores an integer 0 as a float)."""
  kind = key.WhichOneof('kind')
  if kind == 'bytes_value':
    return key.bytes_value.decode(errors='replace')
  value = getattr(key, kind) if kind else ''
  if isinstance(value, float) and value.is_integer():
    return int(value)
  return value


def _slice_name(slice_key) -> str:
  return ','.join(f'{k.column}={_slice_value(k)}' for k in slice_key.single_slice_keys)


def _slice_order(slice_key):
  """Sorts slices by column, then numbers by value (2 before 10), then text."""
  return tuple(
    (k.column, 0, v, '') if isinstance(v, (int, float)) else (k.column, 1, 0, str(v))
    for k in slice_key.single_slice_keys
    for v in [_slice_value(k)]
  )


def _metrics(uri, config) -> dict:
  """Overall, baseline (serving model), per-slice and, for multi-class,
  per-class metrics and the confusion matrix, by our summary names."""
  import tensorflow_model_analysis as tfma

  from components.metrics import TASK_METRICS

  task = config.task
  names = task.class_names if task.type == 'multiclass' else []
  # (baseline?, slice name) -> metrics; per class of the candidate overall.
  found, per_class = {}, {}
  for per_slice in sorted(tfma.load_metrics(uri), key=lambda m: _slice_order(m.slice_key)):
    slice_name = _slice_name(per_slice.slice_key)
    for kv in per_slice.metric_keys_and_values:
      if kv.key.is_diff or not kv.value.HasField('double_value'):
        continue
      value = kv.value.double_value.value
      baseline = kv.key.model_name == 'baseline'
      if kv.key.HasField('sub_key'):
        if not slice_name and not baseline:
          _add_per_class(per_class, kv.key, value, names)
        continue
      name = _summary_name(task.type, kv.key.name)
      if name:
        found.setdefault((baseline, slice_name), {})[name] = (
          int(value) if name == 'example_count' else value
        )
  order = list(TASK_METRICS[task.type])

  def ordered(metrics):
    return {name: metrics[name] for name in order if name in metrics}

  def of(baseline: bool, sliced: bool) -> dict:
    return {s: ordered(m) for (b, s), m in found.items() if b == baseline and bool(s) == sliced}

  result = {
    'metrics': of(False, False).get('', {}),
    'baseline_metrics': of(True, False).get('', {}),
    'slices': of(False, True),
    'baseline_slices': of(True, True),
  }
  if task.type == 'multiclass':
    result['per_class'] = per_class
    result['confusion_matrix'] = _confusion_matrix(uri, len(names))
  return result


def _summary_name(task_type: str, key_name: str) -> str | None:
  from components.metrics import summary_name

  return summary_name(task_type, key_name)


def _add_per_class(per_class: dict, key, value: float, names: list[str]) -> None:
  """A multi-class metric of one class (a sub key's class id), by the class's name."""
  from components.metrics import PER_CLASS_METRICS

  class_id = key.sub_key.class_id.value if key.sub_key.HasField('class_id') else None
  if key.name in PER_CLASS_METRICS and class_id is not None and class_id < len(names):
    per_class.setdefault(names[class_id], {})[key.name] = value


def model_plots(uri, baseline: bool = False):
  """The candidate's (or, with `baseline`, the serving model's) plots over the
  whole eval split (TFMA's PlotsForSlice values)."""
  import tensorflow_model_analysis as tfma

  for per_slice in tfma.load_plots(uri):
    if per_slice.slice_key.single_slice_keys:
      continue
    for kv in per_slice.plot_keys_and_values:
      if (kv.key.model_name == 'baseline') == baseline:
        yield kv.value


def _confusion_matrix(uri, num_classes) -> list[list[int]] | None:
  """Rows: actual class; columns: predicted class (the most probable)."""
  for plot_value in model_plots(uri):
    plot = plot_value.multi_class_confusion_matrix_at_thresholds
    for matrix in plot.matrices:
      counts = [[0] * num_classes for _ in range(num_classes)]
      for entry in matrix.entries:
        if entry.actual_class_id < num_classes and 0 <= entry.predicted_class_id < num_classes:
          counts[entry.actual_class_id][entry.predicted_class_id] = int(entry.num_weighted_examples)
      return counts
  return None


def _gate(uri, result, config, change: dict | None) -> dict:
  """The gated metric for the candidate and the serving model, the comparison
  of the two (`change`, see components.evaluation.judge_change), and why the
  model was or was not blessed."""
  import tensorflow_model_analysis as tfma

  from components.metrics import TASK_METRICS

  name = config.gate_metric
  higher = TASK_METRICS[config.task.type][name].higher_is_better
  value = result['metrics'].get(name)
  base = result['baseline_metrics'].get(name)
  threshold, max_change = config.evaluator.threshold, config.evaluator.max_change
  gate = {
    'metric': name,
    'higher_is_better': higher,
    'candidate': value,
    'serving': base,
    'threshold': threshold,
    'max_change': max_change,
    'change': change,
  }
  validation = tfma.load_validation_result(uri)
  if not validation.validation_ok:
    failures = [
      _failure_text(f, config.task.type, higher)
      for per_slice in validation.metric_validations_per_slice
      for f in per_slice.failures
    ]
    gate['reason'] = '; '.join(failures) or 'validation failed'
    return gate
  text = f'{name} {value:.4f} {">=" if higher else "<="} threshold {threshold:g}'
  if change is None:
    gate['reason'] = text + '; no model was serving, so no comparison applied'
    return gate
  compared = (
    f"{change['verdict']} than the serving model's {base:.4f}"
    if change['verdict'] != 'within noise'
    else f"within the noise of the serving model's {base:.4f}"
  )
  interval = (
    f'(difference {change["diff"]:+.4f}, '
    f'95% interval {change["low"]:+.4f} to {change["high"]:+.4f})'
  )
  if change['blocks']:
    gate['reason'] = (
      f"{name} {value:.4f} is worse than the serving model's {base:.4f} beyond the noise "
      f'by more than {max_change:g} {interval}'
    )
  elif change.get('replace_reason') and change['verdict'] == 'worse':
    gate['reason'] = f'{text}; {compared} {interval}, replacing it: {change["replace_reason"]}'
  else:
    gate['reason'] = f'{text}; {compared} {interval}'
  return gate


def _failure_text(failure, task_type, higher) -> str:
  from components.metrics import summary_name

  name = summary_name(task_type, failure.metric_key.name) or failure.metric_key.name
  value = failure.metric_value.double_value.value
  threshold = failure.metric_threshold
  if failure.metric_key.is_diff:
    allowed = abs(threshold.change_threshold.absolute.value)
    worse = 'below' if higher else 'above'
    return f"{name} is {abs(value):.4f} {worse} the serving model's (allowed {allowed:.4f})"
  if threshold.HasField('value_threshold'):
    bound = threshold.value_threshold
    if higher:
      return f'{name} {value:.4f} < threshold {bound.lower_bound.value:g}'
    return f'{name} {value:.4f} > threshold {bound.upper_bound.value:g}'
  return failure.message or name
