"""TFMA evaluation: metrics, thresholds, and the model now serving as the baseline.

The baseline is resolved at execution time from the push destination, for the
same reasons as the Trainer's warm start (see `components.training`).
"""

from absl import logging
from google.protobuf import wrappers_pb2
import tensorflow_model_analysis as tfma
from tfx import types
from tfx.components import Evaluator
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils

from components import serving

BASELINE_PUSH_DIR_KEY = 'baseline_push_dir'
# Summary metrics, keyed by the name TFMA gives them.
METRICS = {
    'auc': 'AUC',
    'binary_accuracy': 'BinaryAccuracy',
    'precision': 'Precision',
    'recall': 'Recall',
    'calibration': 'Calibration',
    'example_count': 'ExampleCount',
}


def eval_config(min_auc: float, max_auc_drop: float,
                slice_features) -> tfma.EvalConfig:
  """Overall and per-slice metrics; blessing needs AUC >= min_auc and no worse
  than the serving model's by more than max_auc_drop."""
  auc_threshold = tfma.MetricThreshold(
      value_threshold=tfma.GenericValueThreshold(lower_bound={'value': min_auc}),
      change_threshold=tfma.GenericChangeThreshold(
          direction=tfma.MetricDirection.HIGHER_IS_BETTER,
          absolute={'value': -max_auc_drop - 1e-10}))
  # The threshold sits on TFMA's own AUC: estimators also export an 'auc' of
  # their own (fewer buckets), and a name-keyed threshold could bind to that.
  # It is gated on the whole eval set; per-hour slices are reported, not gated.
  metrics = [
      tfma.MetricConfig(class_name=cls, per_slice_thresholds=[
          tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=auc_threshold)
      ] if cls == 'AUC' else [])
      for cls in METRICS.values()
  ]
  metrics.append(tfma.MetricConfig(class_name='CalibrationPlot'))
  return tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(signature_name='eval')],
      # The estimator's own eval metrics would be computed a second time, in
      # its graph, per batch (about 1 s of 13): TFMA's metrics above replace them.
      options=tfma.Options(include_default_metrics=wrappers_pb2.BoolValue(value=False)),
      slicing_specs=[tfma.SlicingSpec()] + [
          tfma.SlicingSpec(feature_keys=[f]) for f in slice_features],
      metrics_specs=[tfma.MetricsSpec(metrics=metrics)])


class ServingBaselineEvaluatorExecutor(evaluator_executor.Executor):
  """TFX's Evaluator executor, comparing against the version now serving."""

  def Do(self, input_dict, output_dict, exec_properties):
    push_dir = exec_properties.get(BASELINE_PUSH_DIR_KEY)
    current = serving.latest(push_dir) if push_dir else None
    baseline_uri = current.baseline_model_uri if current else None
    if current and not baseline_uri:
      logging.warning('Serving version %d has no eval model; no change threshold applies.',
                      current.version)
    if baseline_uri:
      logging.info('Baseline: serving version %d.', current.version)
      baseline = standard_artifacts.Model()
      baseline.uri = baseline_uri
      input_dict = {**input_dict, standard_component_specs.BASELINE_MODEL_KEY: [baseline]}
    return super().Do(input_dict, output_dict, exec_properties)


class _ServingBaselineEvaluatorSpec(standard_component_specs.EvaluatorSpec):
  PARAMETERS = {
      **standard_component_specs.EvaluatorSpec.PARAMETERS,
      BASELINE_PUSH_DIR_KEY: ExecutionParameter(type=str),
  }


class ServingBaselineEvaluator(Evaluator):
  """Evaluator whose baseline is the model serving from `baseline_push_dir`."""
  SPEC_CLASS = _ServingBaselineEvaluatorSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(ServingBaselineEvaluatorExecutor)

  def __init__(self, examples, model, eval_config: tfma.EvalConfig, baseline_push_dir: str):
    spec = _ServingBaselineEvaluatorSpec(
        examples=examples,
        model=model,
        eval_config=eval_config,
        example_splits=json_utils.dumps(None),
        fairness_indicator_thresholds=json_utils.dumps(None),
        baseline_push_dir=baseline_push_dir,
        evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
        blessing=types.Channel(type=standard_artifacts.ModelBlessing))
    base_component.BaseComponent.__init__(self, spec=spec)
