"""The output root's ML Metadata store (SQLite): opened in one place, and
checked before a run relies on it.

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


def open_store(metadata_path):
  """The ML Metadata store of a pipeline's SQLite file."""
  from ml_metadata import metadata_store
  from tfx.orchestration import metadata

  return metadata_store.MetadataStore(
    metadata.sqlite_metadata_connection_config(str(metadata_path))
  )


def problem(metadata_path) -> str | None:
  """What is wrong with the store's SQLite file, or None if it is sound (or absent).

  SQLite's `quick_check` reads every page (milliseconds for a store of a
  few hundred runs) without the full index cross-check of `integrity_check`.
  """
  path = str(metadata_path)
  if not os.path.exists(path):
    return None
  try:
    connection = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
    try:
      rows = connection.execute('PRAGMA quick_check').fetchall()
    finally:
      connection.close()
  except sqlite3.DatabaseError as e:
    return str(e)
  found = [row[0] for row in rows if row[0] != 'ok']
  return '; '.join(found[:2]) if found else None


def set_aside_if_damaged(metadata_path, tag: str) -> str | None:
  """Moves a damaged store (and its journals) to `<store>.damaged-<tag>`;
  returns a note saying so, or None if the store is sound."""
  found = problem(metadata_path)
  if not found:
    return None
  path = str(metadata_path)
  target = f'{path}.damaged-{tag}'
  os.rename(path, target)
  for suffix in _JOURNALS:
    if os.path.exists(path + suffix):
      os.rename(path + suffix, target + suffix)
  return (
    f'the metadata store {path} is damaged ({found}); moved aside to {target}; '
    'a new one is built and every component runs again'
  )
