"""A smoke run of `make bench`: both pipelines side by side on tiny work.

It tests the bench's plumbing (runs, MLMD timings, AUCs, the table, the
results file), not the speed; `test_bench_units.py` covers the scaling and
throughput bookkeeping without running pipelines.
"""

import json
import subprocess
import sys

import pytest

from tests.conftest import DATA_CSV

pytestmark = pytest.mark.e2e
ROWS = 500


def test_bench_writes_sane_results(tmp_path):
  data = tmp_path / 'data'
  data.mkdir()
  (data / 'data.csv').write_text(
    ''.join(DATA_CSV.read_text().splitlines(keepends=True)[: ROWS + 1])
  )
  output = tmp_path / 'latest.json'
  command = [sys.executable, '-m', 'bench', '--reps', '1', '--train-steps', '10']
  command += ['--eval-steps', '2', '--scales', '', '--throughput-steps', '0']
  command += ['--data', str(data), '--output', str(output)]
  # In process: the anchor's multi-process Beam costs a minute and proves nothing here.
  command += ['--anchor-beam-args=--direct_running_mode=in_memory --direct_num_workers=1']
  process = subprocess.run(command, capture_output=True, text=True, timeout=1200)
  assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
  result = json.loads(output.read_text())
  for key in ('ratio_wall', 'ours_wall_s', 'anchor_wall_s', 'ours_auc', 'anchor_auc'):
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
  machine = result['machine']
  assert machine['cpus'] >= 1 and len(machine['load_before']) == len(machine['load_after']) == 3
  assert machine['commit']
  assert '| **total wall** |' in process.stdout
  assert 'scaling' not in result and 'training_throughput' not in result
  assert result['anchor_beam_args'] == ['--direct_running_mode=in_memory', '--direct_num_workers=1']
  assert 'the ratio is no measurement' in result['warning']
