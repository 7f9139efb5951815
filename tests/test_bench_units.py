"""The bench's bookkeeping: scaling and throughput entries, the load warning, the README."""

import argparse
import json
import pathlib

import pytest

from bench import run as bench
from bench.measure import Run


@pytest.fixture
def fake_measure(monkeypatch):
  """`measure` that writes the summary a run would and returns set timings."""
  commands = []

  def measure(command, root, log_path):
    commands.append(command)
    pathlib_root = pathlib.Path(root)
    pathlib_root.mkdir(parents=True, exist_ok=True)
    summary = {'metrics': {'example_count': 40}, 'training': {'examples_per_second': 900.0}}
    (pathlib_root / 'latest_summary.json').write_text(json.dumps(summary))
    seconds = {'CsvExampleGen': 1.0, 'StatisticsGen': 1.0, 'Transform': 3.0, 'Evaluator': 2.0}
    return Run(10.0, 500.0, 3, {**seconds, 'Trainer': 4.0}, 0.9)

  monkeypatch.setattr(bench, 'measure', measure)
  return commands


def _args(tmp_path, **kwargs):
  data = tmp_path / 'data'
  data.mkdir(exist_ok=True)
  (data / 'a.csv').write_text('x,tips\n1,0\n2,1\n3,0\n4,1\n')
  return argparse.Namespace(
    data=str(data), eval_steps=2, scale_train_steps=5, throughput_steps=7, reps=1, **kwargs
  )


def test_scaling_resamples_and_measures_per_1000_examples(tmp_path, fake_measure):
  results = {}
  saves = []
  bench.scaling([1, 10], _args(tmp_path), str(tmp_path), results, lambda: saves.append(1))
  assert set(results) == {'x1', 'x10'} and len(saves) == 2
  assert results['x10']['rows'] == 40 and results['x10']['eval_rows'] == 40
  per_1000 = results['x10']['seconds_per_1000_examples']
  assert per_1000 == {
    'ingest': 50.0,
    'transform': 75.0,
    'evaluation': 50.0,
    'evaluation_compared': 50.0,
  }
  # Each multiple: from nothing, then one more step with that model serving.
  first, compared = fake_measure[:2]
  assert len(fake_measure) == 4
  assert 'trainer.train_steps=5' in first and 'trainer.train_steps=6' in compared
  roots = [[a for a in c if a.startswith('output_root=')] for c in (first, compared)]
  assert roots[0] == roots[1] and len(roots[0]) == 1


def test_once_records_one_run_from_nothing_with_its_commit(tmp_path, fake_measure):
  record = bench.once(1000, _args(tmp_path), str(tmp_path))
  assert len(fake_measure) == 1 and 'trainer.train_steps=5' in fake_measure[0]
  assert record['rows'] == 4000 and record['eval_rows'] == 40 and record['exit'] == 3
  assert record['seconds']['Transform'] == 3.0 and record['peak_rss_mb'] == 500.0
  assert record['commit'] and record['date'] and len(record['load_before']) == 3


def test_throughput_runs_each_topology_and_keeps_its_exit(tmp_path, fake_measure):
  results = {}
  bench.training_throughput([0, 2], _args(tmp_path), str(tmp_path), results, lambda: None)
  assert set(results) == {'single_process', '2_workers_1_ps'}
  assert results['single_process'] == {
    'examples_per_second': 900.0,
    'training_seconds': None,
    'trainer_component_s': 4.0,
    'train_steps': 7,
    'batch_size': bench.ANCHOR_BATCH_SIZE,
    'exit': 3,
  }
  assert 'trainer.workers=2' in fake_measure[1] and 'trainer.workers=2' not in fake_measure[0]


def test_a_busy_machine_is_named_in_a_warning():
  assert bench.quiet_warning([0.3, 1.0, 1.0], 2) is None
  warning = bench.quiet_warning([1.7, 1.0, 1.0], 2)
  assert '1.70' in warning and 'not a fair one' in warning
  warning = bench.quiet_warning([0.41, 2.47, 2.92], 2)  # just after other work
  assert '5-minute load average was 2.47' in warning and 'not a fair one' in warning


def test_the_performance_document_is_written_whole_from_the_results(tmp_path):
  from bench import document

  side = {'wall_s': 10.0, 'peak_rss_mb': 900.0, 'auc': 0.93, 'per_component': {'Trainer': 4.0}}
  result = {
    'date': '2026-11-23 11:00:00',
    'machine': {
      'cpus': 2,
      'load_before': [0.2, 0, 0],
      'load_after': [1.5, 0, 0],
      'commit': 'abc1234',
    },
    'reps': 1,
    'work': {'train_steps': 100, 'eval_steps': 10, 'batch_size': 40},
    'anchor': {**side, 'wall_s': 40.0},
    'ours': side,
    'cached_rerun_s': 3.0,
    'warning': 'the 1-minute load average was 1.70',
    'scaling': {
      'date': '2026-11-23 12:00:00',
      'commit': 'def5678',
      'train_steps': 200,
      'x1': {
        'rows': 15002,
        'eval_rows': 5000,
        'wall_s': 40.0,
        'peak_rss_mb': 1500.0,
        'seconds': {'Evaluator': 10.0},
        'compared_seconds': {'Evaluator': 12.5},
        'seconds_per_1000_examples': {
          'ingest': 0.3,
          'transform': 0.8,
          'evaluation': 2.0,
          'evaluation_compared': 2.5,
        },
      },
    },
    'once': {
      'date': '2026-11-24 09:00:00',
      'commit': '0123456789abcdef',
      'factor': 1000,
      'rows': 15002000,
      'eval_rows': 5000000,
      'train_steps': 200,
      'exit': 0,
      'wall_s': 1800.0,
      'peak_rss_mb': 5000.0,
      'seconds': {'Transform': 900.0, 'CsvExampleGen': 300.0},
      'auc': 0.95,
      'load_before': [0.1, 0.2, 0.3],
      'load_after': [1.9, 1.8, 1.7],
    },
  }
  path = document.write(result, tmp_path / 'performance.md')
  text = path.read_text()
  assert text.startswith('# Performance') and 'written whole by `make bench`' in text
  assert 'Measured on 2026-11-23 11:00:00, commit abc1234, 2 CPUs' in text
  assert '| **total wall** | 40.0 s | 10.0 s | 0.25 |' in text
  assert '**Warning:** the 1-minute load average was 1.70.' in text
  assert 'Measured on 2026-11-23 12:00:00, commit def5678' in text
  row = (
    '| 1\N{MULTIPLICATION SIGN} | 15,002 | 0.30 s | 0.80 s | 2.00 s | 2.50 s | 40.0 s | 1.5 GB |'
  )
  assert row in text
  assert 'Evaluator 5,000 eval rows at 500 rows/s alone, 400 rows/s compared' in ' '.join(
    text.split()
  )
  once = ' '.join(text.split())
  assert '## 1,000\N{MULTIPLICATION SIGN} the data, once' in text
  assert 'One run from nothing on 15,002,000 rows (5,000,000 eval rows, 200 train steps)' in once
  assert 'measured 2026-11-24 09:00:00 at commit `0123456789ab`' in once
  assert '**30.0 minutes**, peak memory 5.0 GB, exit 0' in once
  assert 'By component: CsvExampleGen 300.0 s, Transform 900.0 s.' in once
  assert '{{' not in text and '{%' not in text


def test_a_side_by_side_run_keeps_the_earlier_scaling_and_throughput(tmp_path, fake_measure):
  output = tmp_path / 'latest.json'
  scaling = {'date': '2026-11-23 11:54:38', 'commit': 'a287350', 'x1': {'rows': 15002}}
  output.write_text(json.dumps({'ratio_wall': 0.5, 'scaling': scaling}))
  data = _args(tmp_path).data
  argv = ['--reps', '1', '--scales', '', '--throughput-steps', '0', '--data', data]
  bench.main([*argv, '--output', str(output), '--workdir', str(tmp_path / 'work')])
  result = json.loads(output.read_text())
  assert result['scaling'] == scaling and 'training_throughput' not in result
  assert result['ratio_wall'] == 1.0  # this run's side by side


def test_the_commit_is_marked_changed_by_code_not_by_the_benchs_own_outputs(tmp_path, monkeypatch):
  import subprocess

  from bench import document

  def git(*args):
    subprocess.run(['git', '-C', str(tmp_path), *args], check=True, capture_output=True)

  results, doc = (
    tmp_path / 'bench' / 'results' / 'latest.json',
    tmp_path / 'docs' / 'performance.md',
  )
  for path in (results, doc, tmp_path / 'code.py'):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('first\n')
  git('init', '-q')
  git('add', '-A')
  git('-c', 'user.name=bench', '-c', 'user.email=bench@example.com', 'commit', '-qm', 'first')
  monkeypatch.setattr(bench, 'PROJECT_ROOT', tmp_path)
  monkeypatch.setattr(bench, 'RESULTS', results)
  monkeypatch.setattr(document, 'DOC', doc)
  clean = bench.machine()['commit']
  assert clean and not clean.endswith('+changes')
  results.write_text('an earlier bench\n')
  doc.write_text('an earlier bench\n')
  assert bench.machine()['commit'] == clean
  (tmp_path / 'code.py').write_text('changed\n')
  assert bench.machine()['commit'] == clean + '+changes'
