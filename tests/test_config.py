"""Config parsing and validation; every shipped config loads."""

import pathlib
import re

import pydantic
import pytest

from components import contract
from pipeline import cli
from pipeline.config import DEFAULT_CONFIG, PROJECT_ROOT, ConfigError, load_config, parse_value

SHIPPED = sorted((PROJECT_ROOT / 'pipeline' / 'configs').glob('*.yaml'))


@pytest.mark.parametrize('path', SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
  config = load_config(path)
  assert pathlib.Path(config.data_root).is_absolute() and pathlib.Path(config.data_root).is_dir()
  assert pathlib.Path(config.schema_file).is_file()


def test_default_config_paths_are_relative_to_the_file():
  config = load_config()
  assert config.data_root == str(PROJECT_ROOT / 'data' / 'taxi')
  assert config.output_root == PROJECT_ROOT / 'outputs'
  assert config.push_dir == str(PROJECT_ROOT / 'outputs' / 'serving')
  assert config.metadata_path.parent == config.output_root


def test_the_taxi_config_names_its_task():
  config = load_config()
  assert (config.task.type, config.task.label, config.task.predictions) == (
    'binary',
    'tips',
    'logistic',
  )
  assert config.gate_metric == 'auc'


def test_overrides_are_typed(tmp_path):
  config = load_config(
    overrides=[
      'trainer.train_steps=123',
      'trainer.hparams.hidden_units=[8, 4]',
      'trainer.warm_start=false',
      'evaluator.threshold=0.5',
      'trainer.hparams.estimator=keras',
      'output_root=out',
      'trainer.hparams.learning_rate=1e-3',
      'trainer.hparams.my_own_knob=abc',
    ],
    cwd=tmp_path,
  )
  assert config.trainer.train_steps == 123
  assert config.trainer.hparams['hidden_units'] == [8, 4]
  assert config.trainer.warm_start is False
  assert config.evaluator.threshold == 0.5
  assert config.trainer.hparams['estimator'] == 'keras'
  assert config.trainer.hparams['learning_rate'] == 1e-3
  assert config.trainer.hparams['my_own_knob'] == 'abc'  # the user's own, untouched
  assert config.trainer.hparams['batch_size'] == 128  # the file's, kept
  assert config.output_root == tmp_path / 'out'  # relative to where the user typed it


@pytest.mark.parametrize(
  'raw, value',
  [
    ('1e-3', 1e-3),
    ('-2.5E4', -2.5e4),
    ('3', 3),
    ('0.5', 0.5),
    ('true', True),
    ('[1, 2]', [1, 2]),
    ('abc', 'abc'),
    ('', ''),
    ('gs://b/x', 'gs://b/x'),
  ],
)
def test_override_values(raw, value):
  assert parse_value(raw) == value


def test_uris_stay_uris(tmp_path):
  config = load_config(
    overrides=['data_root=gs://bucket/data', 'schema_file=s3://b/schema.pbtxt'], cwd=tmp_path
  )
  assert config.data_root == 'gs://bucket/data'
  assert config.schema_file == 's3://b/schema.pbtxt'


def test_config_is_frozen_and_validated_on_construction():
  config = load_config()
  with pytest.raises(TypeError):
    config.trainer.train_steps = 1
  with pytest.raises(pydantic.ValidationError):
    config.trainer.__class__(train_steps=0)
  with pytest.raises(pydantic.ValidationError):
    config.__class__.parse_obj({**config.dict(by_alias=True), 'pipeline_name': 'Bad Name'})


@pytest.mark.parametrize(
  'override, key',
  [
    ('trainer.nope=1', 'trainer.nope'),
    ('trainer.learning_rate=0.1', 'trainer.learning_rate'),  # a hyperparameter: trainer.hparams
    ('nope=1', 'nope'),
    ('trainer.train_steps=abc', 'trainer.train_steps'),
    ('trainer.train_steps=0', 'trainer.train_steps'),
    ('trainer.train_steps=1.5', 'trainer.train_steps'),
    ('trainer.warm_start=maybe', 'trainer.warm_start'),
    ('trainer.hparams=3', 'trainer.hparams'),
    ('evaluator.threshold=1.5', 'evaluator.threshold'),  # an AUC
    ('evaluator.threshold=high', 'evaluator.threshold'),
    ('evaluator.max_change=-0.1', 'evaluator.max_change'),
    ('evaluator.metric=rmse', 'evaluator.metric'),  # not a binary metric
    ('evaluator.slice_features=[tips]', 'evaluator.slice_features'),  # the label
    ('task.type=ranking', 'task'),
    ('task.type=multiclass', 'task'),  # needs classes or num_classes
    ('task.classes=[a]', 'task.classes'),
    ('task.label=', 'task.label'),
    ('module=not a module', 'module'),
    ('pipeline_name=Taxi_Pipeline', 'pipeline_name'),
    ('serving_dir=gs://bucket/serving', 'serving_dir'),
    ('trainer=3', 'trainer'),
    ('trainer.cluster=yarn', 'trainer.cluster'),
    ('trainer.workers=-1', 'trainer.workers'),
    ('kubeflow.image=', 'kubeflow.image'),
    ('beam.args=[x]', 'beam.args'),
  ],
)
def test_bad_values_name_the_key(override, key):
  with pytest.raises(ConfigError, match=f"'{key}'"):
    load_config(overrides=[override])


@pytest.mark.parametrize(
  'override, message',
  [
    ('evaluator.treshold=0.5', "'evaluator.treshold'; did you mean 'evaluator.threshold'?"),
    ('trainer.train_step=5', "'trainer.train_step'; did you mean 'trainer.train_steps'?"),
    ('task.lable=y', "'task.lable'; did you mean 'task.label'?"),
    ('pipline_name=x', "'pipline_name'; did you mean 'pipeline_name'?"),
    ('kubeflow.hots=h', "'kubeflow.hots'; did you mean 'kubeflow.host'?"),
    ('trainer.learning_rate=0.1', "'trainer.learning_rate'; model hyperparameters go under"),
    ('evaluator.colour=red', "unknown config key 'evaluator.colour'"),
  ],
)
def test_a_misspelt_key_gets_the_nearest_one(override, message):
  with pytest.raises(ConfigError) as error:
    load_config(overrides=[override])
  assert message in str(error.value)
  if 'did you mean' not in message:
    assert 'did you mean' not in str(error.value)


@pytest.mark.parametrize(
  'overrides, metric',
  [
    (['task.type=regression', 'evaluator.metric=rmse', 'evaluator.threshold=12.5'], 'rmse'),
    (['task.type=regression', 'evaluator.metric=', 'evaluator.threshold=3'], 'rmse'),
    (['task.type=regression', 'evaluator.metric=mae', 'evaluator.threshold=3'], 'mae'),
    (['task.type=multiclass', 'task.num_classes=3', 'evaluator.metric=accuracy'], 'accuracy'),
    (
      [
        'task.type=multiclass',
        'task.classes=[a, b, c]',
        'evaluator.metric=log_loss',
        'evaluator.threshold=2',
      ],
      'log_loss',
    ),
    (['evaluator.metric=log_loss', 'evaluator.threshold=0.3'], 'log_loss'),
  ],
)
def test_each_task_takes_its_own_gate(overrides, metric):
  assert load_config(overrides=overrides).gate_metric == metric


@pytest.mark.parametrize(
  'overrides, key',
  [
    (['task.type=regression', 'evaluator.metric=auc'], 'evaluator.metric'),
    (['task.type=multiclass', 'task.num_classes=3', 'evaluator.metric=auc'], 'evaluator.metric'),
    (
      ['task.type=regression', 'evaluator.metric=rmse', 'evaluator.threshold=-1'],
      'evaluator.threshold',
    ),
    (['trainer.workers=1'], 'trainer.workers'),  # cluster is none
    (['trainer.evaluator=true'], 'trainer.evaluator'),
    (['trainer.cluster=local', 'trainer.workers=2'], 'trainer.workers'),  # no parameter server
    (['trainer.cluster=kubeflow'], 'trainer.shared_dir'),
    (
      ['trainer.cluster=kubeflow', 'trainer.shared_dir=/data/m', 'kubeflow.pvc=models'],
      'trainer.shared_dir',
    ),  # not under kubeflow.mount_path
  ],
)
def test_settings_must_fit_together(overrides, key):
  with pytest.raises(ConfigError, match=f"'{key}'"):
    load_config(overrides=overrides)


def test_cluster_settings_reach_the_trainer():
  assert load_config().cluster_spec() == contract.ClusterSpec()
  config = load_config(
    overrides=[
      'trainer.cluster=kubeflow',
      'trainer.workers=2',
      'trainer.parameter_servers=1',
      'trainer.shared_dir=/mnt/shared/m',
      'kubeflow.pvc=models',
      'kubeflow.image=reg/taxi:2',
      'kubeflow.replica_resources.ps.memory_gb=1',
    ]
  )
  dumped = contract.dump(config.cluster_spec())
  resources = dumped.pop('resources')
  assert resources['ps'] == {'cpu': 1.0, 'memory_gb': 1.0, 'cpu_limit': 1.0, 'memory_limit_gb': 2.0}
  assert resources['chief'] == contract.dump(contract.ReplicaResources().chief)
  assert dumped == {
    'mode': 'kubeflow',
    'workers': 2,
    'parameter_servers': 1,
    'evaluator': False,
    'max_restarts': 3,
    'timeout_s': 0,
    'shared_dir': '/mnt/shared/m',
    'image': 'reg/taxi:2',
    'namespace': '',  # the pods' own, found at run time
    'pvc': 'models',
    'mount_path': '/mnt/shared',
    'expose': False,
  }


def test_payloads_round_trip_and_refuse_unknown_keys():
  args = contract.ModuleArgs(
    task=contract.MulticlassTask(label='y', num_classes=3), hparams={'depth': 3}
  )
  payload = contract.TrainerPayload(module_args=args, push_dir='/s', architecture='a')
  assert contract.load(contract.TrainerPayload, contract.dump(payload)) == payload
  assert contract.dump(args)['task']['num_classes'] == 3
  with pytest.raises(ValueError, match=re.escape("'module_args.hparms'")):
    contract.load(
      contract.TrainerPayload,
      {**contract.dump(payload), 'module_args': {**contract.dump(args), 'hparms': {}}},
    )


def test_missing_or_broken_config_file(tmp_path):
  with pytest.raises(ConfigError, match=re.escape('nope.yaml')):
    load_config(tmp_path / 'nope.yaml')
  bad = tmp_path / 'bad.yaml'
  bad.write_text('trainer: [unclosed')
  with pytest.raises(ConfigError, match=re.escape('bad.yaml: not valid YAML')):
    load_config(bad)


def test_cli_rejects_bad_config_with_one_line_and_runs_nothing(capsys, tmp_path):
  code = cli.main(['run', '--set', f'output_root={tmp_path}', '--set', 'trainer.train_steps=-5'])
  err = capsys.readouterr().err
  assert code == 2
  assert err.strip().count('\n') == 0 and "'trainer.train_steps'" in err
  assert list(tmp_path.iterdir()) == []


def test_default_config_file_is_the_shipped_one():
  assert DEFAULT_CONFIG in SHIPPED
