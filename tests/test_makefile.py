"""The Makefile: cleaning never deletes served models unless told which; the
locks are installed as written."""

import re
import subprocess

from pipeline.config import PROJECT_ROOT


def _outputs(tmp_path):
  out = tmp_path / 'outputs'
  for sub in ('pipeline/Trainer/model/7', 'serving/1700000000', 'runs/r1', 'kubeflow'):
    (out / sub).mkdir(parents=True)
  (out / 'metadata.sqlite').write_text('db')
  (out / 'serving' / '1700000000' / 'saved_model.pb').write_text('model')
  return out


def _make(*args):
  return subprocess.run(
    ['make', '-s', '-C', str(PROJECT_ROOT), *args], capture_output=True, text=True, timeout=60
  )


def test_clean_keeps_served_models_and_says_so(tmp_path):
  out = _outputs(tmp_path)
  result = _make('clean', f'OUTPUTS={out}')
  assert result.returncode == 0, result.stderr
  assert (out / 'serving' / '1700000000' / 'saved_model.pb').read_text() == 'model'
  assert (out / 'runs' / 'r1').is_dir()
  assert not (out / 'pipeline').exists() and not (out / 'metadata.sqlite').exists()
  assert f'kept {out}/serving' in result.stdout


def test_deleting_served_models_needs_the_directory_named(tmp_path):
  out = _outputs(tmp_path)
  result = _make('delete-served', f'OUTPUTS={out}')
  assert result.returncode != 0 and 'name the serving directory' in result.stderr
  assert (out / 'serving' / '1700000000').is_dir()
  assert _make('delete-served', f'SERVING_DIR={out / "serving"}').returncode == 0
  assert not (out / 'serving').exists()


def test_run_local_treats_not_pushed_and_nothing_new_as_success(tmp_path):
  fake = tmp_path / 'python'
  fake.write_text('#!/bin/sh\nexit "$EXIT"\n')
  fake.chmod(0o755)
  stamp = tmp_path / 'installed'  # newer than pyproject.toml and the lock: nothing to install
  stamp.touch()
  for code, ok in ((0, True), (3, True), (4, True), (1, False), (5, False), (75, False)):
    result = subprocess.run(
      ['make', '-s', '-C', str(PROJECT_ROOT), 'run-local', f'PY={fake}', f'STAMP={stamp}'],
      capture_output=True,
      text=True,
      timeout=60,
      env={'PATH': '/usr/bin:/bin', 'EXIT': str(code)},
    )
    assert (result.returncode == 0) == ok, (code, result.returncode, result.stderr)


def test_the_locks_leave_out_what_make_lock_excludes():
  """rfc3987-syntax builds a grammar on import (seconds in every process importing TFX)."""
  makefile = (PROJECT_ROOT / 'Makefile').read_text()
  excluded = re.search(r'^LOCK_EXCLUDED := (.*)$', makefile, re.M).group(1).split()
  names = [excluded[i + 1] for i, arg in enumerate(excluded) if arg == '--no-emit-package']
  assert names == ['rfc3987-syntax', 'lark']
  for lock in ('requirements.lock', 'requirements-dev.lock'):
    pinned = re.findall(r'^([A-Za-z0-9_.-]+)==', (PROJECT_ROOT / lock).read_text(), re.M)
    assert pinned and not set(names) & set(pinned), lock
  installs = [line for line in makefile.splitlines() if 'uv pip install' in line and '-r ' in line]
  assert installs and all('--no-deps' in line for line in installs if 'kfp2' not in line)
