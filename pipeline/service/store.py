"""The output root's ML Metadata store (SQLite), checked before a run relies on it.

A damaged store (a disk full mid-write, a copy cut short) would otherwise
answer every later run with `database disk image is malformed` from deep in
TFX. It holds only what the run records and the serving directory can do
without (the cache and lineage), so a damaged one is moved aside, kept for
inspection, and a new one is built: every component then runs again.
"""

import os
import sqlite3

# What a store's SQLite journal files are called, next to it.
_JOURNALS = ('-journal', '-wal', '-shm')


def _has_artifacts(pipeline_root) -> bool:
  return os.path.isdir(pipeline_root) and any(os.scandir(pipeline_root))


def problem(metadata_path, pipeline_root) -> str | None:
  """What is wrong with the store's SQLite file, or None if it is sound.

  SQLite's `quick_check` reads every page (milliseconds for a store of a
  few hundred runs) without the full index cross-check of `integrity_check`.
  A store that is gone or empty while `pipeline_root` holds artifacts is
  damaged too: a new store would number executions from 1 again, and TFX
  would write into the old artifacts' folders.
  """
  path = str(metadata_path)
  if not os.path.exists(path):
    return (
      'it is missing, but the artifacts it recorded are there'
      if _has_artifacts(pipeline_root)
      else None
    )
  try:
    connection = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
    try:
      rows = connection.execute('PRAGMA quick_check').fetchall()
      tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    finally:
      connection.close()
  except sqlite3.DatabaseError as e:
    return str(e)
  found = [row[0] for row in rows if row[0] != 'ok']
  if found:
    return '; '.join(found[:2])
  if not tables and _has_artifacts(pipeline_root):
    return 'it is empty, but the artifacts it recorded are there'
  return None


def set_aside_if_damaged(metadata_path, pipeline_root, tag: str) -> str | None:
  """Moves a damaged store (and its journals) with the artifacts it recorded
  (`pipeline_root`) into `<its folder>/damaged/<tag>/`; returns a note saying
  so, or None if the store is sound."""
  found = problem(metadata_path, pipeline_root)
  if not found:
    return None
  path = str(metadata_path)
  target = os.path.join(os.path.dirname(path), 'damaged', tag)
  os.makedirs(target)
  for suffix in ('', *_JOURNALS):
    if os.path.exists(path + suffix):
      os.rename(path + suffix, os.path.join(target, os.path.basename(path) + suffix))
  if os.path.isdir(pipeline_root):
    os.rename(pipeline_root, os.path.join(target, os.path.basename(str(pipeline_root))))
  return (
    f'the metadata store {path} is damaged ({found}); moved aside with its artifacts to '
    f'{target}; a new one is built and every component runs again'
  )
