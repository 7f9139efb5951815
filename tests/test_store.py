"""The metadata store is checked before a run relies on it, and set aside when damaged."""

import os

import pytest

from pipeline.service import mlmd as metadata
from pipeline.service import store


@pytest.fixture
def filled(tmp_path):
  """A real ML Metadata store holding a few hundred artifacts."""
  from ml_metadata.proto import metadata_store_pb2

  path = tmp_path / 'metadata.sqlite'
  mlmd = metadata.open_store(path)
  kind = mlmd.put_artifact_type(metadata_store_pb2.ArtifactType(name='Examples'))
  mlmd.put_artifacts(
    [metadata_store_pb2.Artifact(type_id=kind, uri=f'/x/{i}' * 20) for i in range(500)]
  )
  del mlmd
  return path


def _artifacts(tmp_path):
  root = tmp_path / 'pipeline'
  (root / 'CsvExampleGen' / 'examples' / '1').mkdir(parents=True)
  return root


def test_a_sound_store_or_none_has_no_problem(filled, tmp_path):
  root = _artifacts(tmp_path)
  assert store.problem(filled, root) is None
  assert store.problem(tmp_path / 'absent.sqlite', tmp_path / 'no-artifacts') is None
  assert store.set_aside_if_damaged(filled, root, 'r1') is None
  assert filled.exists() and root.exists()


@pytest.mark.parametrize('how', ['deleted', 'emptied'])
def test_a_store_gone_or_emptied_beside_its_artifacts_is_damaged(filled, tmp_path, how):
  """A new store would number executions from 1 again, into the old artifacts' folders."""
  root = _artifacts(tmp_path)
  if how == 'deleted':
    filled.unlink()
  else:
    filled.write_bytes(b'')
  assert 'the artifacts it recorded are there' in store.problem(filled, root)
  assert store.set_aside_if_damaged(filled, root, 'r2')
  assert not root.exists()
  assert (tmp_path / 'damaged' / 'r2' / 'pipeline' / 'CsvExampleGen' / 'examples' / '1').is_dir()


@pytest.mark.parametrize(
  'damage',
  [
    lambda data: data[: len(data) // 2],
    lambda data: data[:100],
    lambda data: b'not a database at all' * 100,
    lambda data: data[:4096] + b'\0' * 4096 + data[8192:],
  ],
  ids=['cut in half', 'cut to a header', 'not sqlite', 'a page zeroed'],
)
def test_a_damaged_store_is_named_and_moved_aside(filled, damage):
  filled.write_bytes(damage(filled.read_bytes()))
  journal = filled.with_name(filled.name + '-journal')
  journal.write_bytes(b'j')
  root = _artifacts(filled.parent)
  found = store.problem(filled, root)
  assert found
  note = store.set_aside_if_damaged(filled, root, 'r1')
  target = filled.parent / 'damaged' / 'r1'
  assert note == (
    f'the metadata store {filled} is damaged ({found}); moved aside with its artifacts to '
    f'{target}; a new one is built and every component runs again'
  )
  assert not filled.exists() and not journal.exists() and not root.exists()
  assert sorted(os.listdir(target)) == ['metadata.sqlite', 'metadata.sqlite-journal', 'pipeline']


def test_the_store_opens_without_tensorflow(filled, tmp_path):
  """A run stopped at its checks opens the store (to recover what a dead run
  left): without importing TensorFlow, which takes seconds."""
  import subprocess
  import sys

  new = tmp_path / 'new' / 'metadata.sqlite'
  code = (
    'import sys; from pipeline.service import mlmd; '
    f'print(len(mlmd.open_store({str(filled)!r}).get_artifacts()), '
    f"len(mlmd.open_store({str(new)!r}).get_artifacts()), 'tensorflow' in sys.modules)"
  )
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  assert result.stdout.split('\n')[0] == '500 0 False'
  assert new.exists()
