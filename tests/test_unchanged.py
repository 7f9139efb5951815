"""A rerun is answered from the last record only when none of its inputs changed."""

import sqlite3

import pytest

from pipeline.config import load_config
from pipeline.record import RunSummary
from pipeline.service import unchanged


@pytest.fixture
def setup(tmp_path):
  data, code = tmp_path / 'data', tmp_path / 'code.py'
  data.mkdir()
  (data / 'a.csv').write_text('x\n1\n')
  code.write_text('X = 1\n')
  config = load_config(
    overrides=[
      f'output_root={tmp_path / "out"}',
      f'data_root={data}',
      f'serving_dir={tmp_path / "s"}',
    ]
  )
  (tmp_path / 'out' / 'pipeline').mkdir(parents=True)
  config.metadata_path.write_bytes(b'')
  inputs = {**unchanged.started(config, 'local', [code]), **unchanged.ended(config)}
  record = RunSummary(
    run_id='r1',
    status='succeeded',
    outcome='pushed',
    inputs=inputs,
    components=[{'name': 'Trainer', 'state': 'executed', 'seconds': 3.0}],
  )
  return config, record, data, code, tmp_path


def test_the_same_inputs_are_answered_from_the_record(setup):
  config, record, *_ = setup
  assert unchanged.last_if_unchanged(config, 'local', [record]) is record
  summary = unchanged.answer(record.copy(update={'pushed_path': '/s/1', 'report': 'r.html'}), 'r2')
  assert summary.run_id == 'r2' and summary.outcome == 'nothing_new'
  assert [c.dict() for c in summary.components] == [
    {'name': 'Trainer', 'state': 'cached', 'seconds': 0.0}
  ]
  assert summary.pushed_path is None and summary.report is None
  assert summary.unchanged_since == 'r1' and summary.inputs == record.inputs


@pytest.mark.parametrize(
  'change',
  [
    lambda config, data, code, root: (data / 'b.csv').write_text('x\n2\n'),  # a new data file
    lambda config, data, code, root: (data / 'a.csv').write_text('x\n3\n'),  # edited data
    lambda config, data, code, root: code.write_text('X = 2\n'),  # the user's code
    lambda config, data, code, root: (
      (root / 's' / '7').mkdir(parents=True)
      or (root / 's' / '7' / 'saved_model.pb').write_bytes(b'm')
    ),  # a version pushed or rolled back
  ],
)
def test_any_changed_input_takes_the_full_path(setup, change):
  config, record, data, code, root = setup
  change(config, data, code, root)
  assert unchanged.last_if_unchanged(config, 'local', [record]) is None


def test_a_changed_config_or_runner_takes_the_full_path(setup):
  config, record, *_ = setup
  other = load_config(
    overrides=[
      f'output_root={config.output_root}',
      f'data_root={config.data_root}',
      f'serving_dir={config.serving_dir}',
      'trainer.train_steps=7',
    ]
  )
  assert unchanged.last_if_unchanged(other, 'local', [record]) is None
  assert unchanged.last_if_unchanged(config, 'beam', [record]) is None


@pytest.mark.parametrize(
  'last',
  [
    {'status': 'failed', 'outcome': 'failed'},
    {'status': 'running'},
    {'status': 'interrupted'},
    {'kind': 'rollback', 'status': 'succeeded', 'outcome': 'rollback'},
    {'inputs': None},
  ],
)
def test_only_a_decided_last_run_is_trusted(setup, last):
  config, record, *_ = setup
  assert unchanged.last_if_unchanged(config, 'local', [record.copy(update=last)]) is None


def test_a_cleaned_output_root_takes_the_full_path(setup):
  config, record, *_ = setup
  config.metadata_path.unlink()
  assert unchanged.last_if_unchanged(config, 'local', [record]) is None


def test_a_damaged_version_or_store_takes_the_full_path_and_a_lock_does_not(setup):
  config, record, _, code, root = setup
  version = root / 's' / '7'
  (version / 'variables').mkdir(parents=True)
  (version / 'saved_model.pb').write_bytes(b'm')
  (version / 'variables' / 'variables.data-00000-of-00001').write_bytes(b'w')
  record.inputs = {**unchanged.started(config, 'local', [code]), **unchanged.ended(config)}
  # Every run writes its holder into the serving directory's lock file.
  (root / 's' / '.run.lock').write_text('{"run_id": "r2"}')
  assert unchanged.last_if_unchanged(config, 'local', [record]) is record
  (version / 'variables' / 'variables.data-00000-of-00001').unlink()
  assert unchanged.last_if_unchanged(config, 'local', [record]) is None
  (version / 'variables' / 'variables.data-00000-of-00001').write_bytes(b'w')
  with sqlite3.connect(config.metadata_path) as store:
    store.execute('CREATE TABLE Artifact (id INTEGER)')
  record.inputs = {**unchanged.started(config, 'local', [code]), **unchanged.ended(config)}
  assert unchanged.last_if_unchanged(config, 'local', [record]) is record
  size = config.metadata_path.stat().st_size
  config.metadata_path.write_bytes(b'\0' * size)  # the same size, not a database
  assert unchanged.last_if_unchanged(config, 'local', [record]) is None
