"""A rerun with nothing new, answered from the last run's record without TensorFlow.

A rerun on the same data, code and config is all cached in ML Metadata, but
finding that out through TFX costs about 10 s: importing TensorFlow, TFX and
the user's module (which imports TFMA), and building the pipeline. So each
successful run records what it read (`inputs` in its summary): hashes of the
config and runner, of every source file of the user's code, of this
project's code, of the schema, of the data files' names, sizes and
modification times, and the installed stack's versions, taken when it
started; and of the serving directory, drift acceptances and metadata
store's size, taken when it ended. A run whose inputs equal the newest record's, when that run
succeeded, cannot decide anything new: it is answered from that record.

Anything else takes the full path: a changed input, a failed or interrupted
last run, remote data, a cleaned output root, a damaged metadata store.
"""

import hashlib
import importlib.metadata
import json
import pathlib

from pipeline.config import PROJECT_ROOT, Config, to_dict
from pipeline.record import CACHED, SUCCEEDED, Component, Outcome, RunSummary
from pipeline.service import store

# The installed libraries whose upgrade could change what a run computes.
STACK = (
  'tfx',
  'tensorflow',
  'tensorflow-estimator',
  'tensorflow-transform',
  'tensorflow-model-analysis',
  'tensorflow-data-validation',
  'tfx-bsl',
  'apache-beam',
  'ml-metadata',
)
_PROJECT_PACKAGES = ('pipeline', 'components')
DECIDED = (Outcome.PUSHED, Outcome.NOT_PUSHED, Outcome.NOTHING_NEW)


def _sha(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def _file_sha(path: pathlib.Path) -> str:
  return _sha(path.read_bytes()) if path.is_file() else 'missing'


def _tree_stats(root: pathlib.Path, pattern: str = '*', hidden: bool = True) -> str:
  """A hash of the names, sizes and modification times of the files under
  `root` (but those under its hidden entries, if not `hidden`)."""
  if not root.is_dir():
    return 'missing'
  entries = sorted(
    (name, stat.st_size, stat.st_mtime_ns)
    for p in root.rglob(pattern)
    if p.is_file()
    for name in [str(p.relative_to(root))]
    if hidden or not name.startswith('.')
    for stat in [p.stat()]
  )
  return _sha(json.dumps(entries).encode())


def started(config: Config, runner: str, code_files: list[pathlib.Path]) -> dict | None:
  """What a run reads, hashed when it starts; None when it cannot be told cheaply."""
  if '://' in config.data_root:
    return None
  project = hashlib.sha256()
  for package in _PROJECT_PACKAGES:
    for path in sorted((PROJECT_ROOT / package).rglob('*.py')):
      project.update(str(path.relative_to(PROJECT_ROOT)).encode() + path.read_bytes())
  return {
    'config': _sha(json.dumps(to_dict(config), sort_keys=True, default=str).encode()),
    'runner': runner,
    'code': {str(p): _file_sha(p) for p in code_files},
    'project': project.hexdigest(),
    'schema': _file_sha(pathlib.Path(config.schema_file)),
    'data': _tree_stats(pathlib.Path(config.data_root)),
    'stack': {name: _version(name) for name in STACK},
  }


def ended(config: Config) -> dict:
  """The serving models and drift acceptances as a run leaves them."""
  push_dir = pathlib.Path(config.push_dir)
  return {
    # Every file of every version (a deleted variables shard is a change
    # too), not the locks every run writes or what is set aside.
    'serving': _tree_stats(push_dir, hidden=False) if '://' not in config.push_dir else 'remote',
    'drift_records': _tree_stats(pathlib.Path(config.local_locations().drift_records)),
    # A store emptied or cut short since: its cache is gone, so the run must run.
    'store_bytes': config.metadata_path.stat().st_size if config.metadata_path.exists() else 0,
  }


def _version(name: str) -> str | None:
  try:
    return importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    return None


def last_if_unchanged(config: Config, runner: str, records: list[RunSummary]) -> RunSummary | None:
  """The newest run record if this run's inputs equal its inputs, else None.

  `records` are the output root's run records, newest first.
  """
  if (
    not records
    or not config.metadata_path.exists()
    or store.problem(config.metadata_path, config.pipeline_root)
  ):
    return None
  last = records[0]
  inputs = last.inputs
  if last.status != SUCCEEDED or last.outcome not in DECIDED or not inputs:
    return None
  if 'remote' in inputs.get('serving', '') or not (config.output_root / 'pipeline').is_dir():
    return None
  code_files = [pathlib.Path(p) for p in inputs.get('code', {})]
  now = started(config, runner, code_files)
  if now is None or {**now, **ended(config)} != inputs:
    return None
  return last


def answer(previous: RunSummary, run_id: str) -> RunSummary:
  """This run's summary, answered from `previous`: every component cached, nothing pushed."""
  return previous.copy(
    deep=True,
    update={
      'run_id': run_id,
      'status': SUCCEEDED,
      'outcome': Outcome.NOTHING_NEW,
      'error': None,
      'components': [
        Component(name=c.name, state=CACHED, seconds=0.0) for c in previous.components
      ],
      'pushed_path': None,
      'pushed_version': None,
      'not_pushed_reason': None,
      'unchanged_since': previous.unchanged_since or previous.run_id,
      'report': None,
    },
  )
