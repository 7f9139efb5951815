"""Cached artifacts whose files are incomplete are not reused."""

from ml_metadata.proto import metadata_store_pb2

from pipeline.service import cache_check
from pipeline.service.mlmd import open_store


def _store_with(tmp_path, type_name, uri, split_names=None):
  store = open_store(tmp_path / 'metadata.sqlite')
  artifact_type = metadata_store_pb2.ArtifactType(name=type_name)
  artifact_type.properties['split_names'] = metadata_store_pb2.STRING
  type_id = store.put_artifact_type(artifact_type)
  artifact = metadata_store_pb2.Artifact(
    type_id=type_id, uri=str(uri), state=metadata_store_pb2.Artifact.LIVE
  )
  if split_names:
    artifact.properties['split_names'].string_value = split_names
  (artifact_id,) = store.put_artifacts([artifact])
  return store, artifact_id


def _state(store, artifact_id):
  return store.get_artifacts_by_id([artifact_id])[0].state


def _examples(tmp_path):
  uri = tmp_path / 'Transform' / 'transformed_examples' / '5'
  for split in ('train', 'eval'):
    (uri / f'Split-{split}').mkdir(parents=True)
    (uri / f'Split-{split}' / 'part-0.gz').write_bytes(b'x')
  return uri


def test_whole_artifacts_stay_live(tmp_path):
  store, artifact_id = _store_with(tmp_path, 'Examples', _examples(tmp_path), '["train", "eval"]')
  assert cache_check.invalidate_incomplete(tmp_path / 'metadata.sqlite', tmp_path / 'lists') == []
  assert _state(store, artifact_id) == metadata_store_pb2.Artifact.LIVE


def test_an_emptied_split_is_not_reused(tmp_path):
  uri = _examples(tmp_path)
  store, artifact_id = _store_with(tmp_path, 'Examples', uri, '["train", "eval"]')
  (uri / 'Split-train' / 'part-0.gz').unlink()  # the folder is kept
  (note,) = cache_check.invalidate_incomplete(tmp_path / 'metadata.sqlite', tmp_path / 'lists')
  assert 'Split-train is empty' in note and str(uri) in note
  assert _state(store, artifact_id) == metadata_store_pb2.Artifact.DELETED


def test_a_model_without_its_saved_model_is_not_reused(tmp_path):
  uri = tmp_path / 'Trainer' / 'model' / '7'
  (uri / 'Format-Serving').mkdir(parents=True)
  (uri / 'Format-Serving' / 'saved_model.pb').write_bytes(b'x')
  store, artifact_id = _store_with(tmp_path, 'Model', uri)
  (note,) = cache_check.invalidate_incomplete(tmp_path / 'metadata.sqlite', tmp_path / 'lists')
  assert 'Format-TFMA/saved_model.pb is missing' in note
  assert _state(store, artifact_id) == metadata_store_pb2.Artifact.DELETED


def test_an_empty_pushed_model_folder_is_whole(tmp_path):
  uri = tmp_path / 'Pusher' / 'pushed_model' / '9'
  uri.mkdir(parents=True)
  _store, _artifact_id = _store_with(tmp_path, 'PushedModel', uri)
  assert cache_check.invalidate_incomplete(tmp_path / 'metadata.sqlite', tmp_path / 'lists') == []


def test_a_file_missing_from_a_recorded_artifact_is_not_reused(tmp_path):
  """A vocabulary deleted from a cached Transform graph: its type's required
  files are all there, but its file list names what is gone."""
  uri = tmp_path / 'Transform' / 'transform_graph' / '4'
  for name in (
    'transform_fn/saved_model.pb',
    'transform_fn/assets/vocab_company',
    'transformed_metadata/schema.pbtxt',
  ):
    (uri / name).parent.mkdir(parents=True, exist_ok=True)
    (uri / name).write_bytes(b'12345')
  store, artifact_id = _store_with(tmp_path, 'TransformGraph', uri)
  recorded_before = store.get_artifacts_by_id([artifact_id])[0]
  assert cache_check.record_file_lists(tmp_path / 'metadata.sqlite', tmp_path / 'lists') == 1
  assert (
    cache_check.record_file_lists(tmp_path / 'metadata.sqlite', tmp_path / 'lists') == 0
  )  # once
  # Nothing in ML Metadata changes: TFX's cache key holds the artifact, update time and all.
  assert store.get_artifacts_by_id([artifact_id])[0] == recorded_before
  assert cache_check.invalidate_incomplete(tmp_path / 'metadata.sqlite', tmp_path / 'lists') == []
  (uri / 'transform_fn' / 'assets' / 'vocab_company').unlink()
  assert cache_check.problem('TransformGraph', str(uri), []) is None  # by type: looks whole
  (note,) = cache_check.invalidate_incomplete(tmp_path / 'metadata.sqlite', tmp_path / 'lists')
  assert 'transform_fn/assets/vocab_company is missing' in note and str(uri) in note
  assert _state(store, artifact_id) == metadata_store_pb2.Artifact.DELETED


def test_a_file_cut_short_is_named_with_both_sizes(tmp_path):
  uri = _examples(tmp_path)
  _store_with(tmp_path, 'Examples', uri, '["train", "eval"]')
  cache_check.record_file_lists(tmp_path / 'metadata.sqlite', tmp_path / 'lists')
  (uri / 'Split-eval' / 'part-0.gz').write_bytes(b'')
  (note,) = cache_check.invalidate_incomplete(tmp_path / 'metadata.sqlite', tmp_path / 'lists')
  assert 'Split-eval/part-0.gz has 0 bytes, 1 when made' in note
