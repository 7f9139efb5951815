"""`python -m pipeline image`: build the pipeline image with the user's code in it.

The Dockerfile installs requirements.lock and this project; the user's
package (the config's `module`) comes in as the build context `usercode`:
the config's `code_dir`, or nothing when the module is part of this project.
"""

import pathlib
import shutil
import subprocess
import tempfile

from pipeline.config import PROJECT_ROOT, Config, ConfigError

DOCKERFILE = PROJECT_ROOT / 'Dockerfile'
# Where the image holds the user's code (Dockerfile: COPY --from=usercode).
IMAGE_CODE_DIR = '/pipeline/usercode'


def _project_packages() -> set[str]:
  return {p.name for p in PROJECT_ROOT.iterdir() if (p / '__init__.py').is_file()}


def build_command(config: Config, tag: str, usercode: pathlib.Path) -> list[str]:
  """The `docker build` command line for `config`'s module, tagged `tag`."""
  return [
    'docker',
    'build',
    '--file',
    str(DOCKERFILE),
    '--tag',
    tag,
    '--build-context',
    f'usercode={usercode}',
    '--build-arg',
    f'MODULE={config.module}',
    str(PROJECT_ROOT),
  ]


def usercode_dir(config: Config) -> pathlib.Path | None:
  """The folder to copy as the user's code, or None when `module` is part of this project."""
  if config.code_dir:
    return pathlib.Path(config.code_dir)
  if config.module.split('.')[0] in _project_packages():
    return None
  raise ConfigError(
    f"config key 'code_dir': the image needs the folder holding {config.module!r}; "
    'set code_dir to it (a project made by `pipeline init` sets it)'
  )


def image_schema_file(config: Config) -> str | None:
  """Where the image holds `schema_file`, when it lies under `code_dir`."""
  if not config.code_dir:
    return None
  try:
    relative = (
      pathlib.Path(config.schema_file)
      .resolve()
      .relative_to(pathlib.Path(config.code_dir).resolve())
    )
  except ValueError:
    return None
  return f'{IMAGE_CODE_DIR}/{relative.as_posix()}'


def build(config: Config, tag: str, dry_run: bool = False) -> list[str]:
  """Builds the image (unless `dry_run`); returns the command it ran."""
  code = usercode_dir(config)
  with tempfile.TemporaryDirectory(prefix='usercode-') as empty:
    command = build_command(config, tag, code or pathlib.Path(empty))
    if not dry_run:
      if not shutil.which('docker'):
        raise RuntimeError('docker is not installed; the command would be: ' + ' '.join(command))
      subprocess.run(command, check=True)
  return command
