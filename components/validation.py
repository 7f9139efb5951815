"""Data validation that can stop a run: the curated schema and a gating ExampleValidator.

TFX's ExampleValidator only writes an anomalies artifact and never stops the
pipeline, so a bad data drop would be trained on. Here any anomaly fails the
component, listing what is wrong, and Transform runs only after it passed.
It is also the drift gate (`components.drift`): the newest span's eval rows
against the previous span's, which TFX's validator does not compare.
"""

import hashlib
import json
import os

from absl import logging
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.components import ExampleValidator
from tfx.components.example_validator import executor as validator_executor
from tfx.components.example_validator import labels
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.components.base import base_component, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import io_utils, json_utils

from components import contract, drift
from components.example_gen import EVAL, PREVIOUS


class DataValidationError(RuntimeError):
  """The data has anomalies against the curated schema, or drifted."""


LABEL_KEY = 'label'
DRIFT_KEY = 'drift_gate'
# Written next to the anomalies: every drift measurement, for the summary.
DRIFT_FILE = 'drift.json'


class GatingExampleValidatorExecutor(validator_executor.Executor):
  """ExampleValidator's executor, failing the execution when it finds anomalies.

  Besides the schema's checks, the label column must hold more than one value
  in every split: a one-class label trains nothing and cannot be evaluated.
  """

  def Do(self, input_dict, output_dict, exec_properties):
    self._anomalies = []
    self._label = exec_properties.get(LABEL_KEY) or ''
    result = super().Do(input_dict, output_dict, exec_properties)
    problems = format_anomalies(self._anomalies)
    if problems:
      raise DataValidationError(problems)
    gate = contract.load(contract.DriftGate, exec_properties.get(DRIFT_KEY))
    if gate.policy.enabled:
      self._drift_gate(input_dict, output_dict, gate)
    return result

  def _drift_gate(self, input_dict, output_dict, gate: contract.DriftGate):
    statistics = artifact_utils.get_single_instance(
      input_dict[standard_component_specs.STATISTICS_KEY]
    )
    if PREVIOUS not in artifact_utils.decode_split_names(statistics.split_names):
      return  # one span only: nothing to compare with
    schema = io_utils.SchemaReader().read(
      io_utils.get_only_uri_in_dir(
        artifact_utils.get_single_uri(input_dict[standard_component_specs.SCHEMA_KEY])
      )
    )
    current, previous = (
      stats_artifact_utils.load_statistics(statistics, split).proto() for split in (EVAL, PREVIOUS)
    )
    measurements = drift.measure(current, previous, schema, gate.policy)
    drifted = [m for m in measurements if m.drifted]
    # The compared statistics themselves identify the drift: a rerun on the
    # same spans reuses them from the cache, so an acceptance holds for it,
    # and no other data can match it.
    key = hashlib.sha256(
      current.SerializeToString(deterministic=True) + previous.SerializeToString(deterministic=True)
    ).hexdigest()
    span = statistics.span
    record = None
    if drifted:
      record = drift.accepted(gate.records_dir, key)
      if record is None and gate.policy.accept:
        record = drift.accept(gate.records_dir, key, span, drifted)
        logging.warning('Drift of span %s accepted; recorded in %s.', span, record['path'])
    anomalies = artifact_utils.get_single_instance(
      output_dict[standard_component_specs.ANOMALIES_KEY]
    )
    with fileio.open(os.path.join(anomalies.uri, DRIFT_FILE), 'w') as f:
      f.write(
        json.dumps(
          {
            'span': span,
            'measurements': [m.to_json() for m in measurements],
            'accepted_at': record and record['accepted_at'],
          },
          indent=1,
        )
      )
    if drifted and record is None:
      raise DataValidationError(drift.failure_text(drifted, span))

  def _Validate(self, inputs, outputs):
    anomalies = super()._Validate(inputs, outputs)
    split = os.path.basename(outputs[labels.SCHEMA_DIFF_PATH].rstrip('/')).removeprefix('Split-')
    self._anomalies.append((split, anomalies))
    problem = single_value(inputs[standard_component_specs.STATISTICS_KEY], self._label)
    if problem:
      extra = anomalies_pb2.Anomalies()
      extra.anomaly_info[self._label].description = problem
      self._anomalies.append((split, extra))
    return anomalies


def single_value(statistics, label: str) -> str | None:
  """Why `label` cannot be learnt from `statistics` (it holds one value), or None."""
  for dataset in statistics.datasets:
    for feature in dataset.features:
      if not label or list(feature.path.step) != [label]:
        continue
      if feature.HasField('string_stats') and feature.string_stats.unique == 1:
        value = feature.string_stats.top_values[0].value if feature.string_stats.top_values else ''
        return f'the label holds a single value ({value!r}): nothing to learn or evaluate'
      if feature.HasField('num_stats') and feature.num_stats.max == feature.num_stats.min:
        return (
          f'the label holds a single value ({feature.num_stats.min:g}): '
          'nothing to learn or evaluate'
        )
  return None


def format_anomalies(split_anomalies) -> str:
  """One headline and one line per anomalous feature, naming the feature and split."""
  by_problem = {}
  for split, anomalies in split_anomalies:
    if anomalies.HasField('dataset_anomaly_info'):
      by_problem.setdefault(('(dataset)', anomalies.dataset_anomaly_info.description), []).append(
        split
      )
    for feature, info in sorted(anomalies.anomaly_info.items()):
      by_problem.setdefault((feature, info.description or info.short_description), []).append(split)
  if not by_problem:
    return ''
  features = sorted({feature for feature, _ in by_problem})
  lines = [f'data validation failed: anomalies in {", ".join(features)}']
  lines += [
    f'  - {feature} ({", ".join(splits)} split): {text}'
    for (feature, text), splits in sorted(by_problem.items())
  ]
  return '\n'.join(lines)


class _GatingValidatorSpec(standard_component_specs.ExampleValidatorSpec):
  PARAMETERS = {
    **standard_component_specs.ExampleValidatorSpec.PARAMETERS,
    LABEL_KEY: ExecutionParameter(type=str),
    DRIFT_KEY: ExecutionParameter(type=str),
  }


class GatingExampleValidator(ExampleValidator):
  """ExampleValidator that stops the pipeline on anomalies (and a one-value `label`)."""

  SPEC_CLASS = _GatingValidatorSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(GatingExampleValidatorExecutor)

  def __init__(self, statistics, schema, label: str, drift_gate: contract.DriftGate | None = None):
    spec = _GatingValidatorSpec(
      statistics=statistics,
      schema=schema,
      label=label,
      # The previous span was validated when it was new; it is here for
      # the drift gate only, and an older drop may predate a schema edit.
      exclude_splits=json_utils.dumps([PREVIOUS]),
      **{DRIFT_KEY: json.dumps(contract.dump(drift_gate or contract.DriftGate()), sort_keys=True)},
      anomalies=types.Channel(type=standard_artifacts.ExampleAnomalies),
    )
    base_component.BaseComponent.__init__(self, spec=spec)


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
    spec = _CuratedSchemaSpec(
      schema_file=schema_file,
      schema_sha256=digest,
      schema=types.Channel(type=standard_artifacts.Schema),
    )
    base_component.BaseComponent.__init__(self, spec=spec)
