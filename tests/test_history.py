"""Run records: a summary file that is not a run record is listed as unreadable, never a crash."""

import json

import pytest

from pipeline import cli
from pipeline.config import load_config
from pipeline.record import UNREADABLE, RunSummary
from pipeline.service import history, unchanged
from pipeline.views import catalog

BAD = {
  'null': 'null',
  'a-list': '[1, 2]',
  'int-id': '{"run_id": 5, "status": "succeeded"}',
  'truncated': '{"run_id": "truncated", "stat',
  'gate-list': '{"run_id": "gate-list", "status": "succeeded", "gate": []}',
  'binary': '\udcff',
  'unknown-status': '{"run_id": "unknown-status", "status": "great"}',
  'metric-text': '{"run_id": "metric-text", "status": "succeeded", "metrics": {"auc": "high"}}',
}


@pytest.fixture
def config(tmp_path):
  config = load_config(overrides=[f'output_root={tmp_path}'])
  good = RunSummary(run_id='20261206T100000-good', status='succeeded', outcome='pushed')
  history.write_summary(config, good)
  for name, text in BAD.items():
    (config.runs_dir / name).mkdir(parents=True)
    path = config.runs_dir / name / history.SUMMARY
    if name == 'binary':
      path.write_bytes(b'\xff\xfe\x00garbage')
    else:
      path.write_text(text)
  return config


def test_every_bad_record_is_listed_as_unreadable_naming_its_file(config):
  records = {r.run_id: r for r in history.load_runs(config)}
  assert records['20261206T100000-good'].status == 'succeeded'
  for name in BAD:
    assert records[name].status == UNREADABLE, name
    assert str(config.runs_dir / name / history.SUMMARY) in records[name].error


def test_history_readers_do_not_crash(config, capsys):
  assert history.recover(config, 'new-run') == []
  assert unchanged.last_if_unchanged(config, 'local', history.load_runs(config)) is None
  lines = catalog.runs_table(history.load_runs(config))
  assert len(lines) == 1 + 1 + len(BAD)
  assert any('truncated' in line and UNREADABLE in line for line in lines)
  code = cli.main(['runs', '--set', f'output_root={config.output_root}'])
  assert code == 0 and 'unreadable' in capsys.readouterr().out
  code = cli.main(['runs', 'show', 'int-id', '--set', f'output_root={config.output_root}'])
  assert code == 0
  assert capsys.readouterr().out.startswith(f'run int-id: {UNREADABLE}')
  code = cli.main(
    ['runs', 'show', 'int-id', '--json', '--set', f'output_root={config.output_root}']
  )
  assert code == 0
  assert json.loads(capsys.readouterr().out)['status'] == UNREADABLE
  assert cli.main(['models', '--set', f'output_root={config.output_root}']) == 0
