"""Data validation that can stop a run: the curated schema and a gating ExampleValidator.

TFX's ExampleValidator only writes an anomalies artifact and never stops the
pipeline, so a bad data drop would be trained on. Here any anomaly fails the
component, listing what is wrong, and Transform runs only after it passed.
"""

import hashlib
import os

from tfx import types
from tfx.components import ExampleValidator
from tfx.components.example_validator import executor as validator_executor
from tfx.components.example_validator import labels
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter


class DataValidationError(RuntimeError):
  """The data has anomalies against the curated schema."""


class GatingExampleValidatorExecutor(validator_executor.Executor):
  """ExampleValidator's executor, failing the execution when it finds anomalies."""

  def Do(self, input_dict, output_dict, exec_properties):
    self._anomalies = []
    result = super().Do(input_dict, output_dict, exec_properties)
    problems = format_anomalies(self._anomalies)
    if problems:
      raise DataValidationError(problems)
    return result

  def _Validate(self, inputs, outputs):
    anomalies = super()._Validate(inputs, outputs)
    split = os.path.basename(outputs[labels.SCHEMA_DIFF_PATH].rstrip('/'))
    self._anomalies.append((split.removeprefix('Split-'), anomalies))
    return anomalies


def format_anomalies(split_anomalies) -> str:
  """One headline and one line per anomalous feature, naming the feature and split."""
  by_problem = {}
  for split, anomalies in split_anomalies:
    if anomalies.HasField('dataset_anomaly_info'):
      by_problem.setdefault(('(dataset)', anomalies.dataset_anomaly_info.description), []).append(split)
    for feature, info in sorted(anomalies.anomaly_info.items()):
      by_problem.setdefault((feature, info.description or info.short_description), []).append(split)
  if not by_problem:
    return ''
  features = sorted({feature for feature, _ in by_problem})
  lines = [f'data validation failed: anomalies in {", ".join(features)}']
  lines += [f'  - {feature} ({", ".join(splits)} split): {text}'
            for (feature, text), splits in sorted(by_problem.items())]
  return '\n'.join(lines)


class GatingExampleValidator(ExampleValidator):
  """ExampleValidator that stops the pipeline on anomalies."""
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(GatingExampleValidatorExecutor)


class _CuratedSchemaSpec(standard_component_specs.ImportSchemaGenSpec):
  PARAMETERS = {
      **standard_component_specs.ImportSchemaGenSpec.PARAMETERS,
      'schema_sha256': ExecutionParameter(type=str),
  }


class CuratedSchemaGen(ImportSchemaGen):
  """ImportSchemaGen whose cache key includes the schema file's content.

  TFX keys the import on the file path only, so an edited schema would be
  served from the cache; the content hash makes an edit re-import it.
  """
  SPEC_CLASS = _CuratedSchemaSpec

  def __init__(self, schema_file: str, local_copy: str | None = None):
    """`schema_file` as the component will read it; `local_copy`, if the
    component runs elsewhere (e.g. in the image), is this machine's copy."""
    with open(local_copy or schema_file, 'rb') as f:
      digest = hashlib.sha256(f.read()).hexdigest()
    spec = _CuratedSchemaSpec(schema_file=schema_file, schema_sha256=digest,
                              schema=types.Channel(type=standard_artifacts.Schema))
    base_component.BaseComponent.__init__(self, spec=spec)
