"""The pipeline image: exactly the locked versions, and the user's module from the config."""

import pathlib

from pipeline import cli
from pipeline.config import PROJECT_ROOT, load_config
from pipeline.definition import image


def test_the_dockerfile_installs_the_lock_and_the_users_code():
  text = (PROJECT_ROOT / 'Dockerfile').read_text()
  lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith('#')]
  install = next(line for line in lines if 'requirements.lock' in line and 'install' in line)
  # The lock is the whole environment: what it leaves out stays out.
  assert '-r requirements.lock' in install and '--no-deps' in install
  assert lines[0].startswith('FROM python:3.10')
  assert 'COPY --from=usercode . /pipeline/usercode/' in lines
  assert f'ENV PYTHONPATH={image.IMAGE_CODE_DIR}' in lines
  assert any("importlib.import_module('${MODULE}')" in line for line in lines)


def test_the_bundled_module_needs_no_user_code(capsys):
  assert cli.main(['image', '--tag', 'reg/taxi:1', '--dry-run']) == 0
  out = capsys.readouterr().out
  assert '--build-arg MODULE=trainer_module' in out and '--tag reg/taxi:1' in out
  assert 'then compile or submit with: --set kubeflow.image=reg/taxi:1' in out


def test_a_projects_code_dir_is_the_user_code_context(tmp_path):
  project = tmp_path / 'churn'
  (project / 'churn_model').mkdir(parents=True)
  (project / 'schema.pbtxt').write_text('')
  config = load_config(
    overrides=[
      'module=churn_model',
      f'code_dir={project}',
      f'schema_file={project / "schema.pbtxt"}',
    ]
  )
  command = image.build(config, 'reg/churn:2', dry_run=True)
  assert f'usercode={project}' in command and 'MODULE=churn_model' in command
  assert (
    command[-1] == str(PROJECT_ROOT)
    and pathlib.Path(command[command.index('--file') + 1]).name == 'Dockerfile'
  )
  assert image.image_schema_file(config) == '/pipeline/usercode/schema.pbtxt'


def test_a_module_outside_the_project_needs_code_dir(capsys):
  assert cli.main(['image', '--tag', 'x', '--dry-run', '--set', 'module=somewhere.model']) == 2
  assert "config key 'code_dir'" in capsys.readouterr().err
