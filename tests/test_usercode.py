"""The user's module: the contract checked before any data work, and the code fingerprint."""

import os
import sys
import textwrap

import pytest

from pipeline.config import ConfigError, load_config
from pipeline.definition import usercode

GOOD = """
def preprocessing_fn(inputs, custom_config):
  return inputs

def trainer_fn(fn_args, schema):
  return {}
"""


@pytest.fixture(autouse=True)
def isolated_imports(monkeypatch):
  """`code_dir` goes on sys.path and PYTHONPATH: undo both after each test."""
  monkeypatch.setattr(sys, 'path', list(sys.path))
  monkeypatch.setenv('PYTHONPATH', os.environ.get('PYTHONPATH', ''))


def _package(root, name, files):
  package = root / name
  package.mkdir(parents=True)
  for file_name, text in files.items():
    (package / file_name).write_text(textwrap.dedent(text))
  return package


def _config(root, module):
  return load_config(
    overrides=[f'module={module}', f'code_dir={root}', f'output_root={root / "out"}']
  )


def test_a_complete_module_passes(tmp_path):
  _package(tmp_path, 'good_mod', {'__init__.py': GOOD})
  assert usercode.check_module(_config(tmp_path, 'good_mod')).trainer_fn


@pytest.mark.parametrize(
  'text, message',
  [
    ('def trainer_fn(fn_args, schema): pass\n', 'has no function preprocessing_fn'),
    ('def preprocessing_fn(inputs): pass\n', 'has no function trainer_fn'),
    (
      'def preprocessing_fn(inputs): pass\ndef trainer_fn(fn_args): pass\n',
      'trainer_fn cannot be called as',
    ),
    ('import not_a_real_library\n', 'cannot import'),
    ('raise RuntimeError("boom")\n', 'failed: RuntimeError: boom'),
  ],
)
def test_a_broken_module_is_one_line_naming_what_is_missing(tmp_path, text, message):
  name = f'mod_{abs(hash(text)) % 10**8}'
  _package(tmp_path, name, {'__init__.py': text})
  with pytest.raises(ConfigError, match=message) as error:
    usercode.check_module(_config(tmp_path, name))
  assert "'module'" in str(error.value) and '\n' not in str(error.value)


def test_a_module_that_does_not_exist(tmp_path):
  with pytest.raises(ConfigError, match="cannot import 'nowhere_mod'"):
    usercode.check_module(_config(tmp_path, 'nowhere_mod'))


def test_fingerprint_sees_helpers_in_another_package(tmp_path):
  _package(
    tmp_path,
    'thin_mod',
    {
      '__init__.py': 'from helpers_pkg.model import trainer_fn\n'
      'from helpers_pkg import prep\n'
      'preprocessing_fn = prep.preprocessing_fn\n'
    },
  )
  helpers = _package(
    tmp_path,
    'helpers_pkg',
    {
      '__init__.py': '',
      'model.py': 'from . import layers\ndef trainer_fn(fn_args, schema): return layers.X\n',
      'layers.py': 'X = 1\n',
      'prep.py': 'def preprocessing_fn(inputs): return inputs\n',
      'unused.py': 'Y = 1\n',
    },
  )
  config = _config(tmp_path, 'thin_mod')
  usercode.add_code_dir(config)
  files = {p.name for p in usercode.source_files('thin_mod')}
  assert {'model.py', 'layers.py', 'prep.py'} <= files
  assert not any('site-packages' in str(p) for p in usercode.source_files('thin_mod'))
  before = usercode.fingerprint(config)
  assert usercode.fingerprint(config) == before
  (helpers / 'layers.py').write_text('X = 2\n')  # a helper two imports away
  after = usercode.fingerprint(config)
  assert after != before
  (helpers / 'unused.py').write_text('Y = 2\n')  # never imported: not the model's code
  assert usercode.fingerprint(config) == after


def test_fingerprint_covers_the_whole_top_level_package(tmp_path):
  package = _package(tmp_path, 'pkg_mod', {'__init__.py': GOOD})
  config = _config(tmp_path, 'pkg_mod')
  before = usercode.fingerprint(config)
  (package / 'loaded_by_name.py').write_text('Z = 1\n')
  assert usercode.fingerprint(config) != before


def test_the_taxi_module_fingerprint_is_its_package(tmp_path):
  files = usercode.source_files('trainer_module')
  assert {p.name for p in files} == {
    '__init__.py',
    'features.py',
    'inputs.py',
    'model.py',
    'preprocessing.py',
    'trainer.py',
  }


DECLARED = (
  GOOD
  + """
import pydantic

class HParams(pydantic.BaseModel):
  learning_rate: float = 0.1
  hidden_units: list[int] = [8]
"""
)


@pytest.mark.parametrize(
  'override, message',
  [
    (
      'trainer.hparams.learnin_rate=0.2',
      (
        "config key 'trainer.hparams.learnin_rate': hp_mod.HParams declares no such "
        "hyperparameter; did you mean 'trainer.hparams.learning_rate'?"
      ),
    ),
    (
      'trainer.hparams.depth=3',
      (
        "config key 'trainer.hparams.depth': hp_mod.HParams declares no such hyperparameter; "
        'its hyperparameters: learning_rate, hidden_units'
      ),
    ),
    (
      'trainer.hparams.learning_rate=fast',
      "config key 'trainer.hparams.learning_rate': value is not a valid float (hp_mod.HParams)",
    ),
    (
      'trainer.hparams.hidden_units=[8, x]',
      "config key 'trainer.hparams.hidden_units.1': value is not a valid integer",
    ),
  ],
)
def test_hparams_are_checked_against_what_the_module_declares(tmp_path, override, message):
  _package(tmp_path, 'hp_mod', {'__init__.py': DECLARED})
  config = load_config(
    overrides=[
      'module=hp_mod',
      f'code_dir={tmp_path}',
      'trainer.hparams={learning_rate: 0.3}',
      override,
    ]
  )
  with pytest.raises(ConfigError) as error:
    usercode.check_module(config)
  assert str(error.value).startswith(message)


def test_every_shipped_config_fits_the_bundled_modules_hparams():
  """The bundled and generated modules declare their hyperparameters; every
  shipped config's trainer.hparams are among them."""
  import pathlib

  import trainer_module
  from pipeline.config import PROJECT_ROOT

  for path in sorted((PROJECT_ROOT / 'pipeline' / 'configs').glob('*.yaml')):
    config = load_config(pathlib.Path(path))
    usercode.check_hparams(trainer_module.HParams, dict(config.trainer.hparams), 'trainer_module')
