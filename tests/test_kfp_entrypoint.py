"""The v2 container entrypoint's repairs of what KFP 2.x backends send."""

import json

import pytest

from pipeline.definition import kfp_entrypoint

EXAMPLES_SCHEMA = 'title: tfx.Examples\ntype: object\n'
INPUTS_SPEC = {
  'artifacts': {'examples': {'artifactType': {'instanceSchema': EXAMPLES_SCHEMA}}},
  'parameters': {'exclude_splits': {'parameterType': 'STRING'}},
}


def _backend_input():
  """An ExecutorInput as the OSS KFP 2.x driver builds it for StatisticsGen."""
  return {
    'inputs': {
      'artifacts': {
        'examples': {
          'artifacts': [
            {
              'name': '17',  # the MLMD id
              'uri': 's3://bucket/root/p/run/CsvExampleGen/u/examples',
              'type': {'instanceSchema': ''},
              'metadata': {'span': 1.0, 'split_names': '["train", "eval"]', 'display_name': 'x'},
            }
          ]
        }
      },
      'parameterValues': {'exclude_splits': '[]'},
    },
    'outputs': {
      'artifacts': {
        'statistics': {
          'artifacts': [
            {
              'name': 'statistics',
              'uri': 's3://bucket/root/p/run/StatisticsGen/u/statistics',
              'type': {'instanceSchema': 'title: tfx.ExampleStatistics\ntype: object\n'},
            }
          ]
        },
        'executor-logs': {
          'artifacts': [
            {
              'name': 'executor-logs',
              'uri': 's3://bucket/root/p/run/StatisticsGen/u/executor-logs',
              'type': {'schemaTitle': 'system.Artifact'},
            }
          ]
        },
      },
      'outputFile': '/s3/bucket/root/p/run/StatisticsGen/u/output_metadata.json',
    },
  }


def test_repair_types_upstream_artifacts_from_the_declared_inputs():
  repaired = kfp_entrypoint.repair(_backend_input(), INPUTS_SPEC)
  (examples,) = repaired['inputs']['artifacts']['examples']['artifacts']
  assert examples['type'] == {'instanceSchema': EXAMPLES_SCHEMA}
  assert examples['name'] == '17' and examples['metadata']['span'] == 1.0


def test_repair_drops_the_launcher_managed_logs_output():
  repaired = kfp_entrypoint.repair(_backend_input(), INPUTS_SPEC)
  assert set(repaired['outputs']['artifacts']) == {'statistics'}


def test_repair_keeps_what_vertex_sends():
  sent = _backend_input()
  sent['inputs']['artifacts']['examples']['artifacts'][0]['type'] = {'schemaTitle': 'tfx.Examples'}
  del sent['outputs']['artifacts']['executor-logs']
  assert kfp_entrypoint.repair(json.loads(json.dumps(sent)), INPUTS_SPEC) == sent


def test_repair_refuses_an_untyped_input_that_is_not_declared():
  with pytest.raises(ValueError, match="input artifact 'examples' is not among the declared"):
    kfp_entrypoint.repair(_backend_input(), {'artifacts': {}})


def test_the_repaired_input_parses_into_tfx_artifacts():
  from google.protobuf import json_format
  from kfp.pipeline_spec import pipeline_spec_pb2
  from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as utils
  from tfx.types import standard_artifacts

  repaired = kfp_entrypoint.repair(_backend_input(), INPUTS_SPEC)
  message = json_format.ParseDict(repaired, pipeline_spec_pb2.ExecutorInput())
  inputs = utils.parse_raw_artifact_dict(message.inputs.artifacts)
  outputs = utils.parse_raw_artifact_dict(message.outputs.artifacts)
  (examples,) = inputs['examples']
  assert isinstance(examples, standard_artifacts.Examples)
  assert examples.span == 1 and examples.split_names == '["train", "eval"]'
  assert set(outputs) == {'statistics'}


def test_a_blessing_against_the_serving_baseline_keeps_its_bookkeeping():
  from tfx.components.evaluator import constants
  from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as utils
  from tfx.types import standard_artifacts

  blessing = standard_artifacts.ModelBlessing()
  blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, 5)
  blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, 0)
  with pytest.raises(KeyError):  # what TFX's own does with the baseline's id
    utils.refactor_model_blessing(blessing, {5: '12'})
  kfp_entrypoint._refactor_blessing(blessing, {5: '12'}, utils.refactor_model_blessing)
  assert not blessing.has_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY)
  current = constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY
  assert blessing.get_string_custom_property(current) == '12'


def test_a_task_after_nothing_new_exits_at_once_with_its_outputs_marked(tmp_path):
  sent = _backend_input()
  sent['inputs']['artifacts']['examples']['artifacts'][0]['metadata'].update(
    {kfp_entrypoint.NOTHING_NEW_KEY: 'true', kfp_entrypoint.STAMP_KEY: 'abc'}
  )
  sent['outputs']['outputFile'] = str(tmp_path / 'task' / 'output_metadata.json')
  args, beam_args = kfp_entrypoint.parse_flags(
    [
      '--executor_class_path',
      'tfx.components.statistics_gen.executor.Executor',
      '--json_serialized_invocation_args',
      json.dumps(sent),
      '--json_serialized_inputs_spec_args',
      json.dumps(INPUTS_SPEC),
      '--runner=DirectRunner',
    ]
  )
  assert beam_args == ['--runner=DirectRunner']
  assert kfp_entrypoint.run(args, beam_args) == kfp_entrypoint.NOTHING_NEW_KEY
  written = json.loads((tmp_path / 'task' / 'output_metadata.json').read_text())
  (statistics,) = written['artifacts']['statistics']['artifacts']
  assert statistics['uri'].endswith('/StatisticsGen/u/statistics')
  assert statistics['metadata'] == {
    kfp_entrypoint.NOTHING_NEW_KEY: 'true',
    kfp_entrypoint.STAMP_KEY: 'abc',
  }
  assert set(written['artifacts']) == {'statistics'}  # the logs are the launcher's


@pytest.mark.parametrize('content', ['{"pipeline_inputs": ', '[1, 2]', 'null', '\x00\xff'])
def test_a_damaged_state_file_means_the_run_does_the_work(tmp_path, content):
  state = tmp_path / 'state.json'
  state.write_text(content, errors='surrogateescape')
  assert kfp_entrypoint._read_state(str(state)) == {}
  assert kfp_entrypoint._read_state(str(tmp_path / 'missing.json')) == {}


def test_the_state_is_replaced_whole(tmp_path):
  state = tmp_path / 'kfp-state' / 'p.json'
  kfp_entrypoint._write_state(str(state), {kfp_entrypoint.STAMP_KEY: 'a'})
  kfp_entrypoint._write_state(str(state), {kfp_entrypoint.STAMP_KEY: 'b'})
  assert kfp_entrypoint._read_state(str(state)) == {kfp_entrypoint.STAMP_KEY: 'b'}
  assert [p.name for p in state.parent.iterdir()] == ['p.json']


def test_s3_artifacts_are_read_and_written_where_the_launcher_copies_them():
  sent = kfp_entrypoint.repair(_backend_input(), INPUTS_SPEC)
  remote = kfp_entrypoint.localize(sent)
  (examples,) = sent['inputs']['artifacts']['examples']['artifacts']
  (statistics,) = sent['outputs']['artifacts']['statistics']['artifacts']
  assert examples['uri'] == '/s3/bucket/root/p/run/CsvExampleGen/u/examples'
  assert statistics['uri'] == '/s3/bucket/root/p/run/StatisticsGen/u/statistics'
  written = {
    'artifacts': {
      'statistics': {
        'artifacts': [
          {
            'uri': statistics['uri'],
            'metadata': {'current_model': statistics['uri'] + '/Split-eval', 'span': 1.0},
          }
        ]
      }
    }
  }
  kfp_entrypoint.delocalize(written, remote)
  (back,) = written['artifacts']['statistics']['artifacts']
  assert back['uri'] == 's3://bucket/root/p/run/StatisticsGen/u/statistics'
  assert back['metadata'] == {
    'current_model': 's3://bucket/root/p/run/StatisticsGen/u/statistics/Split-eval',
    'span': 1.0,
  }


@pytest.mark.parametrize(
  'uri, local',
  [
    ('s3://b/k/x', '/s3/b/k/x'),
    ('minio://mlpipeline/v2/x', '/minio/mlpipeline/v2/x'),
    ('gs://b/k', None),  # TensorFlow and Beam reach GCS themselves
    ('/mnt/shared/pipeline/x', None),
  ],
)
def test_local_paths_are_the_launchers(uri, local):
  assert kfp_entrypoint.local_path(uri) == local


def test_the_stamp_comes_from_an_input_that_read_data():
  """The schema (ImportSchemaGen reads no data) carries an empty stamp, whatever the order."""
  stamped = {kfp_entrypoint.STAMP_KEY: 'abc', 'span': 1.0}
  schema = {kfp_entrypoint.STAMP_KEY: ''}
  assert kfp_entrypoint._upstream_stamp([schema, stamped]) == 'abc'
  assert kfp_entrypoint._upstream_stamp([stamped, schema]) == 'abc'
  assert kfp_entrypoint._upstream_stamp([schema, {}]) == ''
