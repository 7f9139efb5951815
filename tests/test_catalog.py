"""`runs`, `models` and `rollback` on a serving directory of real (tiny) SavedModels."""

import json
import os

import pytest

from components import serving
from pipeline import cli
from pipeline.config import load_config
from pipeline.record import EXIT_LOCKED, RunSummary
from pipeline.service import history, runlock
from pipeline.views import models


@pytest.fixture(scope='module')
def saved_model(tmp_path_factory):
  """A minimal SavedModel with a serving_default signature."""
  import tensorflow as tf

  class Model(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, examples):
      return {'outputs': tf.zeros_like(examples, dtype=tf.float32)}

  model = Model()
  path = str(tmp_path_factory.mktemp('model') / 'm')
  tf.saved_model.save(model, path, signatures={'serving_default': model.serve})
  return path


@pytest.fixture
def config(tmp_path):
  return load_config(overrides=[f'output_root={tmp_path / "out"}'])


def _push(config, saved_model, run_id, auc, spans):
  pushed = serving.push(
    saved_model, saved_model, config.push_dir, {'pipeline_run_id': run_id, 'architecture': 'a'}
  )
  history.write_summary(
    config,
    RunSummary(
      run_id=run_id,
      status='succeeded',
      outcome='pushed',
      blessed=True,
      pushed_version=pushed.version,
      wall_seconds=42.0,
      spans=spans,
      gate={'metric': 'auc', 'candidate': auc},
      metrics={'auc': auc},
      config={'trainer': {'train_steps': 100 + len(spans['train'])}},
    ),
  )
  return pushed.version


@pytest.fixture
def three_versions(config, saved_model):
  return [
    _push(
      config,
      saved_model,
      f'20261123T0{i}0000-aaa{i}',
      0.9 + i / 100,
      {'train': [i], 'eval': i, 'previous': i - 1 or None},
    )
    for i in (1, 2, 3)
  ]


def test_models_lists_every_version_and_which_serves(config, three_versions):
  rows = models.list_models(config)
  assert [r['version'] for r in rows] == three_versions[::-1]
  assert [r['serving'] for r in rows] == [True, False, False]
  assert rows[0]['value'] == pytest.approx(0.93) and rows[0]['spans']['train'] == [3]


def test_models_says_damaged_and_where_a_set_aside_version_went(config, three_versions, capfd):
  newest = os.path.join(config.push_dir, str(three_versions[2]))
  (gone,) = [f for f in serving.push_record(newest)['files'] if f.startswith('fingerprint')]
  os.remove(os.path.join(newest, gone))
  # A rollback (as a run) first moves the damaged newest version aside.
  assert cli.main(['rollback', '--set', f'output_root={config.output_root}']) == 0
  capfd.readouterr()
  assert cli.main(['models', '--set', f'output_root={config.output_root}']) == 0
  out = capfd.readouterr().out
  moved = os.path.join(config.push_dir, serving.DAMAGED_DIR, str(three_versions[2]))
  lines = out.splitlines()
  (at,) = [i for i, x in enumerate(lines) if x.startswith(str(three_versions[2]))]
  # A long note goes on a line of its own, so the table stays within 80 columns.
  assert lines[at + 1] == f'  DAMAGED: {gone} is missing; moved aside to {moved}'
  assert max(len(x) for x in lines if not x.startswith('  ')) <= 80
  assert 'SERVING' not in lines[at] and os.path.isdir(moved)


def test_rollback_republishes_the_previous_version_as_the_newest(config, three_versions, capfd):
  assert cli.main(['rollback', '--set', f'output_root={config.output_root}']) == 0
  assert f'version {three_versions[1]} serves again' in capfd.readouterr().out
  current = serving.latest(config.push_dir)
  assert current.version > three_versions[2]  # TF Serving serves the highest
  assert current.record[models.ROLLBACK_OF] == three_versions[1]
  assert current.record['architecture'] == 'a'  # still a warm start for the next run
  assert current.baseline_model_uri  # and still the Evaluator's baseline
  rows = models.list_models(config)
  assert rows[0][models.ROLLBACK_OF] == three_versions[1] and rows[0]['value'] == pytest.approx(
    0.92
  )
  record = history.load_runs(config)[0]
  assert record.kind == 'rollback' and record.replaced_version == three_versions[2]
  assert serving.versions(config.push_dir)[:3] == three_versions  # nothing deleted


def test_rollback_to_a_named_version_and_refusals(config, three_versions, capfd):
  assert (
    cli.main(['rollback', str(three_versions[0]), '--set', f'output_root={config.output_root}'])
    == 0
  )
  assert serving.latest(config.push_dir).record[models.ROLLBACK_OF] == three_versions[0]
  broken = os.path.join(config.push_dir, str(three_versions[1]))
  with open(os.path.join(broken, 'saved_model.pb'), 'wb') as f:
    f.write(b'\xff not a model')
  capfd.readouterr()
  assert (
    cli.main(['rollback', str(three_versions[1]), '--set', f'output_root={config.output_root}'])
    == 2
  )
  err = capfd.readouterr().err
  assert f'version {three_versions[1]}' in err and 'damaged (saved_model.pb does not parse)' in err
  assert cli.main(['rollback', '123', '--set', f'output_root={config.output_root}']) == 2
  assert 'version 123 is not in' in capfd.readouterr().err


def test_rollback_waits_for_no_run(config, three_versions, capfd):
  with runlock.hold('a-run', {'output root': config.output_root}):
    code = cli.main(['rollback', '--set', f'output_root={config.output_root}'])
  assert code == EXIT_LOCKED and 'in use by run a-run' in capfd.readouterr().err
  assert serving.latest(config.push_dir).version == three_versions[2]


def test_nothing_to_roll_back(config, saved_model, capfd):
  assert cli.main(['rollback', '--set', f'output_root={config.output_root}']) == 2
  assert 'no model serves' in capfd.readouterr().err
  _push(config, saved_model, '20261123T010000-only', 0.9, {'train': [1], 'eval': 1})
  assert cli.main(['rollback', '--set', f'output_root={config.output_root}']) == 2
  assert 'no intact version older than' in capfd.readouterr().err


def test_runs_list_show_and_compare(config, three_versions, capfd):
  assert cli.main(['runs', '--set', f'output_root={config.output_root}']) == 0
  lines = capfd.readouterr().out.splitlines()
  assert lines[0].split()[:3] == ['run', 'outcome', 'metric']
  assert [line.split()[0] for line in lines[1:]] == [
    '20261123T030000-aaa3',
    '20261123T020000-aaa2',
    '20261123T010000-aaa1',
  ]
  assert 'auc 0.9300' in lines[1] and str(three_versions[2]) in lines[1]
  assert (
    cli.main(
      ['runs', 'show', '20261123T02', '--json', '--set', f'output_root={config.output_root}']
    )
    == 0
  )
  assert json.loads(capfd.readouterr().out)['pushed_version'] == three_versions[1]
  assert (
    cli.main(['runs', 'show', '20261123T02', '--set', f'output_root={config.output_root}']) == 0
  )
  shown = capfd.readouterr().out.splitlines()
  assert shown[0].startswith('run 20261123T020000-aaa2: ')
  assert 'gate: auc 0.9200' in '\n'.join(shown) and len(shown) < 20
  assert (
    cli.main(
      [
        'runs',
        'compare',
        '20261123T01',
        '20261123T03',
        '--set',
        f'output_root={config.output_root}',
      ]
    )
    == 0
  )
  out = capfd.readouterr().out
  assert 'metrics.auc' in out and '0.9100' in out and '0.9300' in out
  assert 'trainer.train_steps: 101 -> 101' not in out and 'config: the same' in out
  assert cli.main(['runs', 'show', '2026', '--set', f'output_root={config.output_root}']) == 2
  assert 'names 3 runs' in capfd.readouterr().err
