"""Cached artifacts are checked before a run reuses them.

TFX reuses a cached execution if its output artifacts are LIVE in ML
Metadata and their top folder exists; a folder whose files were deleted
(a `Split-train/` emptied, a vocabulary of a Transform graph gone) would be
reused and fail far downstream, on every rerun. So when a run ends, every
artifact it produced gets a file list (its files and their sizes, in
`<file_lists>/<artifact id>.json`), and before the next run every LIVE
artifact is checked against it (or, without one, for the files its type
must hold). A damaged one is marked DELETED, so TFX's cache passes
it over and its producer runs again.

The file list is a file, not a custom property of the artifact: TFX's cache
key holds the serialized input artifacts, update time included, so any
write to an artifact would miss the cache of everything downstream.
"""

import json
import os
import pathlib

from components import file_list
from pipeline.service import mlmd

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


def problem(type_name: str, uri: str, split_names: list[str], files=None) -> str | None:
  """What is missing from a local artifact's files, or None if it looks whole;
  `files` is its file list, if it has one."""
  if not os.path.exists(uri):
    return 'its folder is gone'
  if files is not None:
    return file_list.problem(uri, files, 'made')
  if type_name in WITH_FILES and os.path.isdir(uri) and not _has_files(uri):
    return 'its folder is empty'
  for split in split_names:
    if not _has_files(os.path.join(uri, f'Split-{split}')):
      return f'Split-{split} is empty'
  for required in REQUIRED_FILES.get(type_name, ()):
    if not os.path.isfile(os.path.join(uri, required)):
      return f'{required} is missing'
  return None


def invalidate_incomplete(metadata_path, file_lists: pathlib.Path) -> list[str]:
  """Marks LIVE local artifacts whose files are incomplete as DELETED (checked
  against their file list in `file_lists`, if any); one note per artifact."""
  if not os.path.exists(metadata_path):
    return []
  from tfx.types import artifact_utils

  store = mlmd.open_store(metadata_path)
  types = {t.id: t.name for t in store.get_artifact_types()}
  damaged, notes = [], []
  for artifact in mlmd.live_local_artifacts(store):
    splits_value = artifact.properties.get('split_names')
    splits = artifact_utils.decode_split_names(splits_value.string_value) if splits_value else []
    type_name = types.get(artifact.type_id, '')
    found = problem(type_name, artifact.uri, splits, _recorded(file_lists, artifact.id))
    if found:
      damaged.append(artifact)
      notes.append(
        f'cached {type_name} at {artifact.uri} is incomplete ({found}); what made it runs again'
      )
  mlmd.mark_deleted(store, damaged)
  return notes


def _recorded(file_lists: pathlib.Path, artifact_id: int) -> dict | None:
  try:
    files = json.loads((file_lists / f'{artifact_id}.json').read_text())
  except (OSError, ValueError):
    return None
  return files if isinstance(files, dict) else None


def record_file_lists(metadata_path, file_lists: pathlib.Path) -> int:
  """Writes a file list into `file_lists` for every LIVE local artifact
  without one; returns how many.

  Called when a run ends, for what it produced: an artifact is LIVE only
  once the execution that made it has published it whole.
  """
  if not os.path.exists(metadata_path):
    return 0
  store = mlmd.open_store(metadata_path)
  written = 0
  for artifact in mlmd.live_local_artifacts(store):
    path = file_lists / f'{artifact.id}.json'
    if path.exists() or not os.path.exists(artifact.uri):
      continue
    file_lists.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix('.tmp')
    staging.write_text(json.dumps(file_list.files(artifact.uri), sort_keys=True))
    staging.replace(path)  # whole or absent
    written += 1
  return written
