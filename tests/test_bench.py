"""A smoke run of `make bench`: one repetition, tiny step counts, a small data sample."""

import json
import subprocess
import sys

import pytest

from tests.conftest import DATA_CSV

pytestmark = pytest.mark.e2e
ROWS = 1000


def test_bench_writes_sane_results(tmp_path):
  data = tmp_path / 'data'
  data.mkdir()
  (data / 'data.csv').write_text(
    ''.join(DATA_CSV.read_text().splitlines(keepends=True)[: ROWS + 1])
  )
  output = tmp_path / 'latest.json'
  process = subprocess.run(
    [
      sys.executable,
      '-m',
      'bench',
      '--reps',
      '1',
      '--train-steps',
      '20',
      '--eval-steps',
      '5',
      '--scales',
      '1',
      '--throughput-steps',
      '30',
      '--throughput-workers',
      '0',
      '--data',
      str(data),
      '--output',
      str(output),
    ],
    capture_output=True,
    text=True,
    timeout=1200,
  )
  assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
  result = json.loads(output.read_text())
  for key in (
    'ratio_wall',
    'ours_wall_s',
    'anchor_wall_s',
    'ours_auc',
    'anchor_auc',
    'cached_rerun_s',
    'per_component',
    'scaling',
  ):
    assert key in result, key
  assert result['anchor']['failed_runs'] == result['ours']['failed_runs'] == 0
  assert result['ratio_wall'] == pytest.approx(
    result['ours_wall_s'] / result['anchor_wall_s'], abs=1e-3
  )
  assert 0 < result['ours_auc'] <= 1 and 0 < result['anchor_auc'] <= 1
  assert 0 < result['cached_rerun_s'] < result['ours_wall_s']
  for name in ('anchor', 'ours'):
    components = result['per_component'][name]
    assert {'CsvExampleGen', 'Transform', 'Trainer', 'Evaluator'} <= set(components)
    assert all(seconds >= 0 for seconds in components.values())
    assert result[name]['peak_rss_mb'] > 100
  scale = result['scaling']['x1']
  assert scale['rows'] == ROWS
  assert all(v > 0 for v in scale['seconds_per_1000_examples'].values())
  throughput = {k: v for k, v in result['training_throughput'].items() if k != 'date'}
  # (cluster throughput runs are the cluster e2e tests' business)
  assert set(throughput) == {'single_process'}
  for run in throughput.values():
    assert run['exit'] in (0, 3) and run['examples_per_second'] > 0 and run['train_steps'] == 30
  assert '| **total wall** |' in process.stdout
