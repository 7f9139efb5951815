"""create_pipeline: the components, their order and what goes into cache keys."""

from tfx.dsl.compiler import compiler

from pipeline.config import load_config
from pipeline.pipeline import code_fingerprint, create_pipeline

EXPECTED = ['CsvExampleGen', 'StatisticsGen', 'SchemaGen', 'ExampleValidator', 'Transform',
            'Trainer', 'Evaluator', 'Pusher']


def _pipeline(tmp_path, *overrides):
  return create_pipeline(load_config(overrides=[f'output_root={tmp_path}', *overrides]))


def test_components_and_no_resolver(tmp_path):
  pipeline = _pipeline(tmp_path)
  assert sorted(c.id for c in pipeline.components) == sorted(EXPECTED)
  ir = compiler.Compiler().compile(pipeline)
  assert sorted(n.pipeline_node.node_info.id for n in ir.nodes) == sorted(EXPECTED)
  assert not [n for n in ir.nodes if 'Resolver' in n.pipeline_node.node_info.type.name]


def test_transform_waits_for_validation(tmp_path):
  components = {c.id: c for c in _pipeline(tmp_path).components}
  assert components['ExampleValidator'] in components['Transform'].upstream_nodes
  order = [n.pipeline_node.node_info.id for n in compiler.Compiler().compile(_pipeline(tmp_path)).nodes]
  assert order.index('ExampleValidator') < order.index('Transform') < order.index('Trainer')
  assert order.index('Evaluator') < order.index('Pusher')


def test_user_code_is_referenced_by_module_path(tmp_path):
  components = {c.id: c for c in _pipeline(tmp_path).components}
  assert components['Transform'].exec_properties['preprocessing_fn'] == 'trainer_module.preprocessing_fn'
  assert components['Trainer'].exec_properties['trainer_fn'] == 'trainer_module.trainer_fn'
  assert not components['Trainer'].exec_properties.get('module_file')


def test_code_fingerprint_follows_the_source(tmp_path, monkeypatch):
  package = tmp_path / 'usermod'
  package.mkdir()
  (package / '__init__.py').write_text('x = 1\n')
  monkeypatch.syspath_prepend(str(tmp_path))
  before = code_fingerprint('usermod')
  assert code_fingerprint('usermod') == before
  (package / 'model.py').write_text('y = 2\n')
  assert code_fingerprint('usermod') != before


def test_config_reaches_the_components(tmp_path):
  components = {c.id: c for c in _pipeline(tmp_path, 'trainer.train_steps=77').components}
  assert '77' in str(components['Trainer'].exec_properties['train_args'])
  assert components['Evaluator'].exec_properties['baseline_push_dir'] == str(tmp_path / 'serving')
