"""CsvExampleGen over data drops (spans): a rolling window of spans, checked before ingest.

TFX's CsvExampleGen ingests one span, the newest, and splits it 2:1 by a
hash of each example. Training on the last N drops would need a Resolver
node, which the Kubeflow v2 backend cannot run. Here one ExampleGen writes:

- `train`: the train share of each of the `window` newest spans;
- `eval`: the eval share of the newest span, which the model is judged on;
- `previous`: the eval share of the span before the newest, when there is
  one, which the drift gate compares `eval` with (same hash, same share).

A row's side is decided by a hash of its cells, with TFX's bucket counts,
so it falls on the same side whichever run reads it. The examples are TFX's
CSV path's, written ten times faster (see `csv_ingest`). The driver
fingerprints every file read, so a rerun with no new span is served from
the cache.
"""

import itertools
import json
import os

from tfx import types
from tfx.components import CsvExampleGen
from tfx.components.example_gen import driver, write_split
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor, base_component, executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import proto_utils

from components import contract, csv_ingest, spans
from components.csv_check import DataError, check_csv_files

WINDOW_KEY = 'span_window'
MISSING_KEY = 'missing_values'  # a JSON list of the tokens read as a missing number
# Custom properties of the Examples artifact: the spans read, as JSON.
SPANS_PROPERTY = 'spans_read'
TRAIN, EVAL, PREVIOUS = 'train', 'eval', 'previous'


def _pattern(exec_properties) -> str:
  input_config = example_gen_pb2.Input()
  proto_utils.json_to_proto(
    exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config
  )
  (split,) = input_config.splits
  return split.pattern


def selection(exec_properties) -> spans.Selection:
  """The spans to read. The driver's newest span, when it ran (it does not
  on the Kubeflow v2 backend), so the fingerprint matches what is read."""
  newest = exec_properties.get(example_gen_utils.SPAN_PROPERTY_NAME)
  return spans.select(
    exec_properties[standard_component_specs.INPUT_BASE_KEY],
    _pattern(exec_properties),
    int(exec_properties[WINDOW_KEY]),
    newest=None if newest is None else int(newest),
  )


def check_spans(
  input_base: str, pattern: str, window: int, checked: frozenset[str] = frozenset()
) -> spans.Selection:
  """The spans a run would read, each one's CSV files checked (see `csv_check`)
  but those of a pattern in `checked`, which the caller has just checked.

  Raises:
    DataError: no data matches `pattern`, or a file is malformed.
  """
  try:
    chosen = spans.select(input_base, pattern, window)
  except ValueError as e:
    raise DataError(str(e)) from None
  for span in _spans_read(chosen):
    if span.pattern not in checked:
      check_csv_files(input_base, span.pattern)
  return chosen


def _spans_read(chosen: spans.Selection) -> list[spans.Span]:
  read = list(chosen.window)
  if chosen.previous and chosen.previous not in read:
    read.append(chosen.previous)
  return read


class SpanDriver(driver.FileBasedDriver):
  """Resolves the newest span and fingerprints every span the executor will read."""

  def resolve_exec_properties(self, exec_properties, pipeline_info, component_info):
    chosen = selection(exec_properties)
    exec_properties[example_gen_utils.SPAN_PROPERTY_NAME] = chosen.newest.number
    exec_properties[example_gen_utils.VERSION_PROPERTY_NAME] = chosen.newest.version
    exec_properties[example_gen_utils.FINGERPRINT_PROPERTY_NAME] = chosen.fingerprint
    return exec_properties


class SpanCsvExampleGenExecutor(base_beam_executor.BaseBeamExecutor):
  """Writes train/eval/previous from the selected spans (see the module docstring)."""

  def Do(self, input_dict, output_dict, exec_properties):
    self._log_startup(input_dict, output_dict, exec_properties)
    chosen = selection(exec_properties)
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    for span in _spans_read(chosen):
      check_csv_files(input_base, span.pattern)
    output_config = example_gen_pb2.Output()
    proto_utils.json_to_proto(
      exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config
    )
    names = [split.name for split in output_config.split_config.splits]
    if names != [TRAIN, EVAL]:
      raise ValueError(f'output splits {names}: this ExampleGen writes {TRAIN} and {EVAL}')
    buckets = list(itertools.accumulate(s.hash_buckets for s in output_config.split_config.splits))
    examples = artifact_utils.get_single_instance(
      output_dict[standard_component_specs.EXAMPLES_KEY]
    )
    missing = tuple(json.loads(exec_properties[MISSING_KEY]))
    written = [TRAIN, EVAL] + ([PREVIOUS] if chosen.previous else [])
    examples.split_names = artifact_utils.encode_split_names(written)
    split_dir = {name: artifact_utils.get_split_uri([examples], name) for name in written}
    for directory in split_dir.values():
      fileio.makedirs(directory)
    with self._make_beam_pipeline() as pipeline:
      for span in _spans_read(chosen):
        files = sorted(fileio.glob(os.path.join(input_base, span.pattern)))
        destinations = [
          split_dir[TRAIN] if span in chosen.window else None,
          split_dir[EVAL]
          if span == chosen.newest
          else split_dir[PREVIOUS]
          if span == chosen.previous
          else None,
        ]
        _ = pipeline | f'Write[span-{span.number}]' >> csv_ingest.WriteSplitExamples(
          files, buckets, destinations, prefix=f'span{span.number}-', missing=missing
        )
    examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(
      examples, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP)
    )
    examples.span = chosen.newest.number
    if chosen.newest.version is not None:
      examples.version = chosen.newest.version
    examples.set_string_custom_property(
      SPANS_PROPERTY,
      json.dumps(
        {
          'train': [s.number for s in chosen.window],
          'eval': chosen.newest.number,
          'previous': chosen.previous.number if chosen.previous else None,
        }
      ),
    )


class _SpanExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
  PARAMETERS = {
    **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
    WINDOW_KEY: ExecutionParameter(type=int),
    MISSING_KEY: ExecutionParameter(type=str),
  }


class SpanCsvExampleGen(CsvExampleGen):
  """CsvExampleGen reading the `window` newest spans matching `pattern` under `input_base`.

  `pattern` is TFX's split pattern: `*` for a flat folder (one span), or
  with `{SPAN}` or `{YYYY}`/`{MM}`/`{DD}` (and optionally `{VERSION}`), e.g.
  `span-{SPAN}/*`.
  """

  SPEC_CLASS = _SpanExampleGenSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(SpanCsvExampleGenExecutor)
  DRIVER_CLASS = SpanDriver

  def __init__(
    self,
    input_base: str,
    pattern: str = '*',
    window: int = 1,
    missing_values: tuple[str, ...] = contract.MISSING_VALUES,
  ):
    spans.has_span_spec(pattern)  # raises on a malformed pattern, at pipeline construction
    input_config = example_gen_pb2.Input(
      splits=[example_gen_pb2.Input.Split(name=spans.INPUT_SPLIT, pattern=pattern)]
    )
    spec = _SpanExampleGenSpec(
      input_base=input_base,
      input_config=input_config,
      output_config=example_gen_utils.make_default_output_config(input_config),
      output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
      output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
      examples=types.Channel(type=standard_artifacts.Examples),
      **{WINDOW_KEY: window, MISSING_KEY: json.dumps(list(missing_values))},
    )
    base_component.BaseComponent.__init__(self, spec=spec)
