"""The evaluation: TFMA's metrics and thresholds, and the model now serving as the baseline.

The baseline is resolved at execution time from the push destination, for the
same reasons as the Trainer's warm start (see `components.training`).
"""

import json
import os
import time

import tensorflow_model_analysis as tfma
from absl import logging
from google.protobuf import wrappers_pb2
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import io_utils, json_utils, path_utils, proto_utils

from components import batch_metrics, contract, eval_model, paired_comparison, serving, smoke_check
from components.contract import CHANGE_KEY, ChangeGate, Task
from components.metrics import PER_CLASS_METRICS, TASK_METRICS, Metric, gate_metrics

BASELINE_PUSH_DIR_KEY = 'baseline_push_dir'
# The blessing's record of the serving version the candidate was compared with.
BASELINE_VERSION_KEY = 'baseline_version'
# The blessing's record of the smoke check (components.smoke_check): '' when
# the serving model loaded and predicted finite values, else what was wrong.
SERVING_CHECK_KEY = 'serving_check'
# The comparison with the serving model (a contract.ChangeGate).
CHANGE_GATE_KEY = 'change_gate'


def _threshold(metric: Metric, bound: float) -> tfma.MetricThreshold:
  """The metric on the right side of `bound`. The comparison with the serving
  model is not TFMA's change threshold, which compares point values: see
  `judge_change`."""
  if metric.higher_is_better:
    value = tfma.GenericValueThreshold(lower_bound={'value': bound})
  else:
    value = tfma.GenericValueThreshold(upper_bound={'value': bound})
  return tfma.MetricThreshold(value_threshold=value)


def change_gate(task: Task, gate_metric: str, max_change: float, replace_reason: str = ''):
  """The comparison with the serving model the Evaluator makes for `gate_metric`."""
  metric = TASK_METRICS[task.type][gate_metric]
  return ChangeGate(
    metric=metric.tfma_name,
    higher_is_better=metric.higher_is_better,
    max_change=max_change,
    replace_reason=replace_reason,
  )


def judge_change(diff: float, low: float, high: float, gate: ChangeGate) -> dict:
  """The verdict on candidate minus serving model `diff`, with its confidence
  interval [low, high] over the same eval rows.

  `better` or `worse` only when the whole interval is on one side of 0,
  else `within noise`. The candidate is held back (`blocks`) only when it is
  worse beyond the noise by more than `max_change`, and no person said to
  replace the serving model.
  """
  sign = 1.0 if gate.higher_is_better else -1.0
  # In the metric's good direction: positive is better.
  good_low, good_high = sorted((sign * low, sign * high))
  verdict = 'better' if good_low > 0 else 'worse' if good_high < 0 else 'within noise'
  blocks = good_high < -gate.max_change and not gate.replace_reason
  return {
    'diff': diff,
    'low': low,
    'high': high,
    'verdict': verdict,
    'blocks': blocks,
    'replace_reason': gate.replace_reason,
  }


def eval_config(task: Task, gate_metric: str, threshold: float, slice_features) -> tfma.EvalConfig:
  """TFMA's config for `task`: its metrics (components.metrics) overall and per
  slice, and blessing gated on `gate_metric` over the whole eval set."""
  if gate_metric not in gate_metrics(task.type):
    raise ValueError(f'{gate_metric!r} cannot gate a {task.type} model')
  gate = _threshold(TASK_METRICS[task.type][gate_metric], threshold)
  metrics = {}  # (class, module) -> config: one class may give several metrics
  for name, metric in TASK_METRICS[task.type].items():
    config = metrics.setdefault(
      (metric.class_name, metric.module),
      tfma.MetricConfig(class_name=metric.class_name, module=metric.module),
    )
    if name == gate_metric:
      config.per_slice_thresholds.append(
        tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=gate)
      )
  metrics = list(metrics.values())
  specs = []
  if task.type == 'binary':
    metrics.append(tfma.MetricConfig(class_name='CalibrationPlot'))
  elif task.type == 'multiclass':
    metrics.append(tfma.MetricConfig(class_name='MultiClassConfusionMatrixPlot'))
    # One-vs-rest precision and recall of each class, in a spec of their own:
    # binarization applies to every metric of a spec.
    specs.append(
      tfma.MetricsSpec(
        metrics=[tfma.MetricConfig(class_name=m.class_name) for m in PER_CLASS_METRICS.values()],
        binarize=tfma.BinarizationOptions(class_ids={'values': list(range(task.num_classes))}),
      )
    )
  return tfma.EvalConfig(
    model_specs=[tfma.ModelSpec(signature_name='eval', prediction_key=task.predictions)],
    # The estimator's own eval metrics would be computed a second time, in
    # its graph, per batch: TFMA's metrics above replace them.
    options=tfma.Options(include_default_metrics=wrappers_pb2.BoolValue(value=False)),
    slicing_specs=[tfma.SlicingSpec()]
    + [tfma.SlicingSpec(feature_keys=[f]) for f in slice_features],
    metrics_specs=[tfma.MetricsSpec(metrics=metrics), *specs],
  )


class ServingBaselineEvaluatorExecutor(base_executor.BaseExecutor):
  """The Evaluator's executor: TFMA's metrics, plots and validation of the
  candidate (and of the version now serving, the baseline), computed over
  whole arrays by `components.batch_metrics` and written as TFMA writes
  them; the blessing as TFX's Evaluator gives it, then held back when the
  candidate is worse than the serving model beyond the noise.

  Each model predicts every eval row once (`components.eval_model`); the
  comparison with the serving model uses the same predictions. The
  blessing records that version (`baseline_version`, 0 for none), so the
  Pusher can refuse to push if another version serves by then. It also
  records the smoke check of the candidate's serving model
  (`serving_check`), which runs in a fresh process beside the evaluation:
  its start-up (importing TensorFlow, seconds) then overlaps it, where in
  the Pusher it stood alone on the critical path.
  """

  def Do(self, input_dict, output_dict, exec_properties):
    model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
    examples = artifact_utils.get_single_instance(input_dict[standard_component_specs.EXAMPLES_KEY])
    eval_split = os.path.join(artifact_utils.get_split_uri([examples], 'eval'), '*')
    check = smoke_check.Check(path_utils.serving_model_path(model.uri), eval_split)
    try:
      self._evaluate(model, eval_split, output_dict, exec_properties)
    except BaseException:
      check.kill()
      raise
    problem = check.outcome()
    blessing = artifact_utils.get_single_instance(
      output_dict[standard_component_specs.BLESSING_KEY]
    )
    blessing.set_string_custom_property(SERVING_CHECK_KEY, problem or '')
    if problem:
      logging.warning('The serving model fails its smoke check: %s.', problem)

  def _evaluate(self, model, eval_split: str, output_dict, exec_properties):
    push_dir = exec_properties.get(BASELINE_PUSH_DIR_KEY)
    current = serving.latest(push_dir) if push_dir else None
    baseline_uri = current.baseline_model_uri if current else None
    if current and not baseline_uri:
      logging.warning(
        'Serving version %d has no intact eval model; no change threshold applies.', current.version
      )
    blessing = artifact_utils.get_single_instance(
      output_dict[standard_component_specs.BLESSING_KEY]
    )
    config = tfma.EvalConfig()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.EVAL_CONFIG_KEY], config)
    # As TFX's Evaluator: a baseline model spec when there is a baseline.
    config = tfma.utils.update_eval_config_with_defaults(
      config, has_baseline=bool(baseline_uri), rubber_stamp=True
    )
    tfma.utils.verify_eval_config(config)
    # Model name -> its EvalSavedModel, the candidate first: its eval
    # receiver gives the slice features and the labels.
    specs = sorted(config.model_specs, key=lambda spec: spec.is_baseline)
    model_dirs = {
      spec.name: path_utils.eval_model_path(baseline_uri if spec.is_baseline else model.uri)
      for spec in specs
    }
    if baseline_uri:
      logging.info('Baseline: serving version %d.', current.version)
    slice_features = sorted({k for spec in config.slicing_specs for k in spec.feature_keys})
    started = time.monotonic()
    predicted = eval_model.predict(
      list(model_dirs.values()), eval_split, config.model_specs[0].prediction_key, slice_features
    )
    rows = {
      name: batch_metrics.ModelRows(p.labels, p.predictions)
      for name, p in zip(model_dirs, predicted, strict=True)
    }
    sliced = batch_metrics.compute(config, rows, predicted[0].features)
    output_uri = artifact_utils.get_single_uri(output_dict[standard_component_specs.EVALUATION_KEY])
    validation = batch_metrics.write(output_uri, config, sliced, eval_split, model_dirs)
    logging.info(
      'Evaluated %d eval rows in %.1f s: %d slices, validation %s.',
      predicted[0].rows,
      time.monotonic() - started,
      len(sliced),
      'passed' if validation.validation_ok else 'failed',
    )
    _record_blessing(blessing, validation.validation_ok, model, exec_properties, baseline_uri)
    blessing.set_int_custom_property(BASELINE_VERSION_KEY, current.version if current else 0)
    if baseline_uri:
      gate = contract.load(ChangeGate, exec_properties[CHANGE_GATE_KEY])
      candidate, serving_model = predicted  # in the order of model_dirs
      measured = paired_comparison.compare(
        gate.metric, candidate.labels, candidate.predictions, serving_model.predictions
      )
      change = judge_change(measured.diff, measured.low, measured.high, gate)
      blessing.set_string_custom_property(CHANGE_KEY, json.dumps(change))
      logging.info('Against serving version %d: %s.', current.version, change)
      if change['blocks']:
        _unbless(blessing)


def _record_blessing(blessing, blessed: bool, model, exec_properties, baseline_uri):
  """The blessing's file and properties as TFX's Evaluator writes them."""
  blessing.set_string_custom_property(
    evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri
  )
  blessing.set_int_custom_property(
    evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id
  )
  if baseline_uri:
    blessing.set_string_custom_property(
      evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline_uri
    )
  if 'current_component_id' in exec_properties:
    blessing.set_string_custom_property('component_id', exec_properties['current_component_id'])
  name = (
    evaluator_constants.BLESSED_FILE_NAME if blessed else evaluator_constants.NOT_BLESSED_FILE_NAME
  )
  io_utils.write_string_file(os.path.join(blessing.uri, name), '')
  blessing.set_int_custom_property(
    evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY,
    evaluator_constants.BLESSED_VALUE if blessed else evaluator_constants.NOT_BLESSED_VALUE,
  )


def _unbless(blessing):
  """Turns TFX's blessing into a refusal (its file and its property)."""
  blessed = os.path.join(blessing.uri, evaluator_constants.BLESSED_FILE_NAME)
  if fileio.exists(blessed):
    fileio.remove(blessed)
  io_utils.write_string_file(
    os.path.join(blessing.uri, evaluator_constants.NOT_BLESSED_FILE_NAME), ''
  )
  blessing.set_int_custom_property(
    evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY, evaluator_constants.NOT_BLESSED_VALUE
  )


class _ServingBaselineEvaluatorSpec(standard_component_specs.EvaluatorSpec):
  PARAMETERS = {
    **standard_component_specs.EvaluatorSpec.PARAMETERS,
    BASELINE_PUSH_DIR_KEY: ExecutionParameter(type=str),
    CHANGE_GATE_KEY: ExecutionParameter(type=str),
  }


class ServingBaselineEvaluator(base_component.BaseComponent):
  """TFX's Evaluator (its spec, inputs and outputs), whose baseline is the
  model serving from `baseline_push_dir`, computed without Beam."""

  SPEC_CLASS = _ServingBaselineEvaluatorSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(ServingBaselineEvaluatorExecutor)

  def __init__(
    self, examples, model, eval_config: tfma.EvalConfig, baseline_push_dir: str, gate: ChangeGate
  ):
    spec = _ServingBaselineEvaluatorSpec(
      examples=examples,
      model=model,
      eval_config=eval_config,
      example_splits=json_utils.dumps(None),
      fairness_indicator_thresholds=json_utils.dumps(None),
      baseline_push_dir=baseline_push_dir,
      change_gate=json.dumps(contract.dump(gate)),
      evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
      blessing=types.Channel(type=standard_artifacts.ModelBlessing),
    )
    super().__init__(spec=spec)
