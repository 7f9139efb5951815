"""CsvExampleGen with the structural CSV check of `csv_check` before ingest."""

from tfx.components import CsvExampleGen
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.csv_check import check_csv_files


class CheckedCsvExampleGenExecutor(csv_executor.Executor):
  """TFX's CSV ExampleGen executor, refusing malformed files with a precise error."""

  def Do(self, input_dict, output_dict, exec_properties):
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                              input_config)
    for split in input_config.splits:
      check_csv_files(exec_properties[standard_component_specs.INPUT_BASE_KEY], split.pattern)
    return super().Do(input_dict, output_dict, exec_properties)


class CheckedCsvExampleGen(CsvExampleGen):
  """CsvExampleGen that checks its CSV files first (see `components.csv_check`)."""
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(CheckedCsvExampleGenExecutor)
