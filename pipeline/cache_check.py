"""Cached artifacts are checked before a run reuses them.

TFX reuses a cached execution if its output artifacts are LIVE in ML
Metadata and their top folder exists; a folder whose files were deleted
(a `Split-train/` emptied, a vocabulary of a Transform graph gone) would be
reused and fail far downstream, on every rerun. So when a run ends, every
artifact it produced gets a manifest (its files and their sizes, as the
custom property `files`), and before the next run every LIVE artifact is
checked against its manifest (or, without one, for the files its type must
hold). A damaged one is marked DELETED, so TFX's cache passes it over and
its producer runs again.
"""

import json
import os

from components import manifest

# Files an artifact of these types must hold, relative to its URI.
REQUIRED_FILES = {
  'Model': ('Format-Serving/saved_model.pb', 'Format-TFMA/saved_model.pb'),
  'TransformGraph': ('transform_fn/saved_model.pb', 'transformed_metadata/schema.pbtxt'),
}
# Types whose folder always holds files (a PushedModel's, for one, may be empty).
WITH_FILES = (
  'Examples',
  'ExampleStatistics',
  'Schema',
  'ExampleAnomalies',
  'TransformGraph',
  'Model',
  'ModelRun',
  'ModelEvaluation',
  'ModelBlessing',
)


def _has_files(path: str) -> bool:
  return any(files for _, _, files in os.walk(path))


MANIFEST = 'files'


def problem(type_name: str, uri: str, split_names: list[str], files=None) -> str | None:
  """What is missing from a local artifact's files, or None if it looks whole;
  `files` is its manifest, if it has one."""
  if not os.path.exists(uri):
    return 'its folder is gone'
  if files is not None:
    return manifest.problem(uri, files, 'made')
  if type_name in WITH_FILES and os.path.isdir(uri) and not _has_files(uri):
    return 'its folder is empty'
  for split in split_names:
    if not _has_files(os.path.join(uri, f'Split-{split}')):
      return f'Split-{split} is empty'
  for required in REQUIRED_FILES.get(type_name, ()):
    if not os.path.isfile(os.path.join(uri, required)):
      return f'{required} is missing'
  return None


def invalidate_incomplete(metadata_path) -> list[str]:
  """Marks LIVE local artifacts whose files are incomplete as DELETED; one note per artifact."""
  if not os.path.exists(metadata_path):
    return []
  from ml_metadata.proto import metadata_store_pb2
  from tfx.types import artifact_utils

  from pipeline.store import open_store

  store = open_store(metadata_path)
  types = {t.id: t.name for t in store.get_artifact_types()}
  damaged, notes = [], []
  for artifact in store.get_artifacts():
    if (
      artifact.state != metadata_store_pb2.Artifact.LIVE
      or not artifact.uri
      or '://' in artifact.uri
    ):
      continue
    splits_value = artifact.properties.get('split_names')
    splits = artifact_utils.decode_split_names(splits_value.string_value) if splits_value else []
    type_name = types.get(artifact.type_id, '')
    found = problem(type_name, artifact.uri, splits, _recorded(artifact))
    if found:
      artifact.state = metadata_store_pb2.Artifact.DELETED
      damaged.append(artifact)
      notes.append(
        f'cached {type_name} at {artifact.uri} is incomplete ({found}); what made it runs again'
      )
  if damaged:
    store.put_artifacts(damaged)
  return notes


def _recorded(artifact) -> dict | None:
  if MANIFEST not in artifact.custom_properties:
    return None
  try:
    files = json.loads(artifact.custom_properties[MANIFEST].string_value)
  except ValueError:
    return None
  return files if isinstance(files, dict) else None


def record_manifests(metadata_path) -> int:
  """Gives every LIVE local artifact without a manifest one; returns how many.

  Called when a run ends, for what it produced: an artifact is LIVE only
  once the execution that made it has published it whole.
  """
  if not os.path.exists(metadata_path):
    return 0
  from ml_metadata.proto import metadata_store_pb2

  from pipeline.store import open_store

  store = open_store(metadata_path)
  updated = []
  for artifact in store.get_artifacts():
    if (
      artifact.state != metadata_store_pb2.Artifact.LIVE
      or not artifact.uri
      or '://' in artifact.uri
      or MANIFEST in artifact.custom_properties
      or not os.path.exists(artifact.uri)
    ):
      continue
    artifact.custom_properties[MANIFEST].string_value = json.dumps(
      manifest.files(artifact.uri), sort_keys=True
    )
    updated.append(artifact)
  if updated:
    store.put_artifacts(updated)
  return len(updated)
