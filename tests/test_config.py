"""Config parsing and validation; every shipped config loads."""

import dataclasses
import pathlib

import pytest

from pipeline import cli
from pipeline.config import DEFAULT_CONFIG, PROJECT_ROOT, ConfigError, load_config

SHIPPED = sorted((PROJECT_ROOT / 'pipeline' / 'configs').glob('*.yaml'))


@pytest.mark.parametrize('path', SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
  config = load_config(path)
  assert config.data_root.is_absolute() and config.data_root.is_dir()
  assert config.schema_file.is_file()


def test_default_config_paths_are_relative_to_the_file():
  config = load_config()
  assert config.data_root == PROJECT_ROOT / 'data' / 'taxi'
  assert config.output_root == PROJECT_ROOT / 'outputs'
  assert config.push_dir == PROJECT_ROOT / 'outputs' / 'serving'
  assert config.metadata_path.parent == config.output_root


def test_overrides_are_typed(tmp_path):
  config = load_config(overrides=[
      'trainer.train_steps=123', 'trainer.hidden_units=[8, 4]', 'trainer.warm_start=false',
      'evaluator.min_auc=0.5', 'trainer.estimator=keras', 'output_root=out'], cwd=tmp_path)
  assert config.trainer.train_steps == 123
  assert config.trainer.hidden_units == (8, 4)
  assert config.trainer.warm_start is False
  assert config.evaluator.min_auc == 0.5
  assert config.trainer.estimator == 'keras'
  assert config.output_root == tmp_path / 'out'  # relative to where the user typed it


def test_config_is_frozen():
  with pytest.raises(dataclasses.FrozenInstanceError):
    load_config().trainer.train_steps = 1


@pytest.mark.parametrize('override, key', [
    ('trainer.nope=1', 'trainer.nope'),
    ('nope=1', 'nope'),
    ('trainer.train_steps=abc', 'trainer.train_steps'),
    ('trainer.train_steps=0', 'trainer.train_steps'),
    ('trainer.train_steps=1.5', 'trainer.train_steps'),
    ('trainer.estimator=boosted', 'trainer.estimator'),
    ('trainer.hidden_units=[]', 'trainer.hidden_units'),
    ('trainer.learning_rate=2', 'trainer.learning_rate'),
    ('trainer.warm_start=maybe', 'trainer.warm_start'),
    ('evaluator.min_auc=1.5', 'evaluator.min_auc'),
    ('evaluator.max_auc_drop=-0.1', 'evaluator.max_auc_drop'),
    ('module=not a module', 'module'),
    ('trainer=3', 'trainer'),
    ('trainer.cluster=yarn', 'trainer.cluster'),
    ('trainer.workers=-1', 'trainer.workers'),
    ('kubeflow.image=', 'kubeflow.image'),
])
def test_bad_values_name_the_key(override, key):
  with pytest.raises(ConfigError, match=f"'{key}'"):
    load_config(overrides=[override])


@pytest.mark.parametrize('overrides, key', [
    (['trainer.workers=1'], 'trainer.workers'),  # cluster is none
    (['trainer.evaluator=true'], 'trainer.evaluator'),
    (['trainer.cluster=local', 'trainer.workers=2'], 'trainer.workers'),  # no parameter server
    (['trainer.cluster=kubeflow'], 'trainer.shared_dir'),
    (['trainer.cluster=kubeflow', 'trainer.shared_dir=/data/m', 'kubeflow.pvc=models'],
     'trainer.shared_dir'),  # not under kubeflow.mount_path
])
def test_cluster_settings_must_fit_together(overrides, key):
  with pytest.raises(ConfigError, match=f"'{key}'"):
    load_config(overrides=overrides)


def test_cluster_settings_reach_the_trainer():
  from pipeline.pipeline import cluster_config
  assert cluster_config(load_config()) == {'mode': 'none'}
  config = load_config(overrides=['trainer.cluster=kubeflow', 'trainer.workers=2',
                                  'trainer.parameter_servers=1', 'trainer.shared_dir=/mnt/shared/m',
                                  'kubeflow.pvc=models', 'kubeflow.image=reg/taxi:2'])
  assert cluster_config(config) == {
      'mode': 'kubeflow', 'workers': 2, 'parameter_servers': 1, 'evaluator': False,
      'max_restarts': 3, 'timeout_s': 0, 'shared_dir': '/mnt/shared/m', 'image': 'reg/taxi:2',
      'namespace': 'kubeflow', 'pvc': 'models', 'mount_path': '/mnt/shared'}


def test_missing_or_broken_config_file(tmp_path):
  with pytest.raises(ConfigError, match='nope.yaml'):
    load_config(tmp_path / 'nope.yaml')
  bad = tmp_path / 'bad.yaml'
  bad.write_text('trainer: [unclosed')
  with pytest.raises(ConfigError, match='bad.yaml: not valid YAML'):
    load_config(bad)


def test_cli_rejects_bad_config_with_one_line_and_runs_nothing(capsys, tmp_path):
  code = cli.main(['run', '--set', f'output_root={tmp_path}', '--set', 'trainer.train_steps=-5'])
  err = capsys.readouterr().err
  assert code == 2
  assert err.strip().count('\n') == 0 and "'trainer.train_steps'" in err
  assert list(tmp_path.iterdir()) == []


def test_default_config_file_is_the_shipped_one():
  assert DEFAULT_CONFIG in SHIPPED
