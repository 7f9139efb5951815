"""The metadata store is checked before a run relies on it, and set aside when damaged."""

import os

import pytest

from pipeline import store


@pytest.fixture
def filled(tmp_path):
  """A real ML Metadata store holding a few hundred artifacts."""
  from ml_metadata.proto import metadata_store_pb2

  path = tmp_path / 'metadata.sqlite'
  mlmd = store.open_store(path)
  kind = mlmd.put_artifact_type(metadata_store_pb2.ArtifactType(name='Examples'))
  mlmd.put_artifacts(
    [metadata_store_pb2.Artifact(type_id=kind, uri=f'/x/{i}' * 20) for i in range(500)]
  )
  del mlmd
  return path


def test_a_sound_store_or_none_has_no_problem(filled, tmp_path):
  assert store.problem(filled) is None
  assert store.problem(tmp_path / 'absent.sqlite') is None
  assert store.set_aside_if_damaged(filled, 'r1') is None and filled.exists()


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
  found = store.problem(filled)
  assert found
  note = store.set_aside_if_damaged(filled, 'r1')
  moved = f'{filled}.damaged-r1'
  assert note == (
    f'the metadata store {filled} is damaged ({found}); moved aside to {moved}; '
    'a new one is built and every component runs again'
  )
  assert not filled.exists() and os.path.exists(moved) and os.path.exists(moved + '-journal')
  assert not journal.exists()
