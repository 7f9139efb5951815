"""create_pipeline: the components, their order and what goes into cache keys."""

import json

from tfx.dsl.compiler import compiler

from components import contract
from pipeline.config import load_config
from pipeline.definition.pipeline import create_pipeline

EXPECTED = [
  'CsvExampleGen',
  'StatisticsGen',
  'SchemaGen',
  'ExampleValidator',
  'Transform',
  'Trainer',
  'Evaluator',
  'Pusher',
]


def _pipeline(tmp_path, *overrides):
  return create_pipeline(load_config(overrides=[f'output_root={tmp_path}', *overrides]))


def test_components_and_no_resolver(tmp_path):
  pipeline = _pipeline(tmp_path)
  assert sorted(c.id for c in pipeline.components) == sorted(EXPECTED)
  ir = compiler.Compiler().compile(pipeline)
  assert sorted(n.pipeline_node.node_info.id for n in ir.nodes) == sorted(EXPECTED)
  assert not [n for n in ir.nodes if 'Resolver' in n.pipeline_node.node_info.type.name]


def test_training_waits_for_validation_and_transform_does_not(tmp_path):
  components = {c.id: c for c in _pipeline(tmp_path).components}
  assert components['ExampleValidator'] in components['Trainer'].upstream_nodes
  # Transform only analyses the data: it runs while the data is profiled and checked.
  assert components['ExampleValidator'] not in components['Transform'].upstream_nodes
  assert components['StatisticsGen'] not in components['Transform'].upstream_nodes
  order = [
    n.pipeline_node.node_info.id for n in compiler.Compiler().compile(_pipeline(tmp_path)).nodes
  ]
  assert order.index('ExampleValidator') < order.index('Trainer')
  assert order.index('Transform') < order.index('Trainer') < order.index('Evaluator')
  assert order.index('Evaluator') < order.index('Pusher')


def test_user_code_is_referenced_by_module_path(tmp_path):
  components = {c.id: c for c in _pipeline(tmp_path).components}
  assert (
    components['Transform'].exec_properties['preprocessing_fn'] == 'trainer_module.preprocessing_fn'
  )
  assert components['Trainer'].exec_properties['trainer_fn'] == 'trainer_module.trainer_fn'
  assert not components['Trainer'].exec_properties.get('module_file')


def test_config_reaches_the_components(tmp_path):
  components = {c.id: c for c in _pipeline(tmp_path, 'trainer.train_steps=77').components}
  assert '77' in str(components['Trainer'].exec_properties['train_args'])
  assert components['Evaluator'].exec_properties['baseline_push_dir'] == str(tmp_path / 'serving')


def test_one_typed_payload_reaches_the_trainer_and_transform(tmp_path):
  components = {c.id: c for c in _pipeline(tmp_path, 'trainer.hparams.depth=7').components}
  payload = contract.load(
    contract.TrainerPayload, json.loads(components['Trainer'].exec_properties['custom_config'])
  )
  assert payload.module_args.task.label == 'tips'
  assert payload.module_args.hparams['depth'] == 7
  assert payload.push_dir == str(tmp_path / 'serving')
  transform_args = contract.load(
    contract.ModuleArgs, json.loads(components['Transform'].exec_properties['custom_config'])
  )
  assert transform_args == payload.module_args.shaping()
  assert transform_args.hparams['depth'] == 7


def test_a_training_only_hparam_keeps_transforms_cache_key(tmp_path):
  def transform_properties(*overrides):
    components = {c.id: c for c in _pipeline(tmp_path, *overrides).components}
    return components['Transform'].exec_properties, components['Trainer'].exec_properties

  transform, trainer = transform_properties()
  for training_only in contract.TRAINING_ONLY_HPARAMS:
    other_transform, other_trainer = transform_properties(f'trainer.hparams.{training_only}=3')
    assert other_transform == transform, training_only
    assert other_trainer != trainer, training_only
  assert transform_properties('trainer.hparams.hidden_units=[5]')[0] != transform


def test_eval_config_gates_on_the_configured_metric(tmp_path):
  components = {
    c.id: c
    for c in _pipeline(tmp_path, 'evaluator.metric=log_loss', 'evaluator.threshold=0.4').components
  }
  text = components['Evaluator'].exec_properties['eval_config']
  assert 'BinaryLogLoss' in text and '"upper_bound"' in text
  assert '"prediction_key": "logistic"' in text
