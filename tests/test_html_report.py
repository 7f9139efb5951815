"""The run report for runs that trained nothing: refused data, and a fully cached rerun."""

from pipeline.config import load_config
from pipeline.record import RunSummary
from pipeline.views import html_report
from tests.conftest import rendered_images


def _summary(**fields):
  return RunSummary(
    **{
      'run_id': '20261123T080000-abcd',
      'status': 'succeeded',
      'runner': 'local',
      'wall_seconds': 12.5,
      'components': [],
      'metrics': {},
      'baseline_metrics': {},
      **fields,
    }
  )


def test_a_refused_run_shows_why(tmp_path):
  config = load_config(overrides=[f'output_root={tmp_path}'])
  error = (
    'ExampleValidator failed: data drift: span 3 differs from the span before it in '
    'trip_miles\n  - trip_miles: Jensen-Shannon divergence 0.7572 > threshold 0.3'
  )
  summary = _summary(
    status='failed',
    outcome='data_refused',
    error=error,
    spans={'train': [3], 'eval': 3, 'previous': 2},
  )
  page = html_report.write(summary, config, [])
  text = page.read_text()
  assert 'the data was refused' in text and 'Jensen-Shannon divergence 0.7572' in text
  assert 'Trained on span(s) 3; evaluated on span 3; compared for drift with span 2.' in text
  assert 'class="decision bad"' in text


def test_a_cached_rerun_gets_a_light_report_with_the_trend(tmp_path):
  config = load_config(overrides=[f'output_root={tmp_path}'])
  earlier = [
    _summary(
      run_id=f'20261123T0{i}0000-aaaa',
      outcome='pushed',
      pushed_version=i,
      gate={'metric': 'auc', 'candidate': 0.9 + i / 100, 'serving': None},
    )
    for i in (1, 2)
  ]
  summary = _summary(
    outcome='nothing_new',
    metrics={'auc': 0.92, 'example_count': 100},
    gate={'metric': 'auc', 'candidate': 0.92, 'serving': 0.92},
  )
  page = html_report.write(summary, config, earlier)
  text = page.read_text()
  assert 'served from the cache' in text and '<h2>Calibration</h2>' not in text
  assert '20261123T010000-aaaa' in text and '20261123T020000-aaaa' in text
  images, decoded = rendered_images(page)
  assert images == decoded == 2  # the metrics' bars and the trend


def test_the_data_table_counts_empty_cells_as_missing(tmp_path):
  """An empty cell is a feature with no values, which TFDV counts as present:
  the table's missing share comes from the number of values, and a column
  with no value at all shows no statistics."""
  from pipeline.scaffold import schema

  data = tmp_path / 'data'
  data.mkdir()
  (data / 't.csv').write_text(
    'fare,company,tract\n' + ''.join(f'{i}.5,{"" if i % 4 else "acme"},\n' for i in range(40))
  )
  stats = schema.statistics(str(data / '*'), ())
  uri = tmp_path / 'statistics'
  (uri / 'Split-train').mkdir(parents=True)
  (uri / 'Split-train' / 'FeatureStats.pb').write_bytes(stats.SerializeToString())
  rows = {
    row[0]: [html_report._cell(c) for c in row[1:]]
    for row in html_report._statistics_rows(str(uri))
  }
  assert rows['fare'][1:3] == ['40', '0.0000']
  assert rows['company'][1:3] == ['10', '0.7500']
  assert rows['company'][7] == "1 values; most frequent 'acme'"
  assert rows['tract'][2] == '1.0000' and rows['tract'][3:7] == ['\u2013'] * 4  # none


def test_a_compared_run_shows_what_decided_it_and_the_index_links_every_run(tmp_path):
  """The gate's difference, every metric per slice with its delta, the
  parameters, the trend with a rollback, and the index linking each report."""
  import re

  config = load_config(overrides=[f'output_root={tmp_path}'])
  gate = {
    'metric': 'auc',
    'candidate': 0.9526,
    'serving': 0.9554,
    'threshold': 0.9,
    'max_change': 0.0,
    'change': {
      'diff': -0.0028,
      'low': -0.0041,
      'high': -0.0015,
      'verdict': 'worse',
      'blocks': True,
    },
    'reason': "auc 0.9526 is worse than the serving model's 0.9554 beyond the noise",
  }
  earlier = _summary(
    run_id='20261123T010000-aaaa',
    outcome='pushed',
    pushed_version=1,
    gate={**gate, 'candidate': 0.9554, 'serving': None, 'change': None},
  )
  rollback = _summary(
    run_id='20261123T020000-bbbb',
    kind='rollback',
    outcome='rollback',
    rolled_back_to=1,
    pushed_version=3,
  )
  html_report.write(earlier, config, [])
  summary = _summary(
    run_id='20261123T030000-cccc',
    outcome='not_pushed',
    gate=gate,
    blessing_reason=gate['reason'],
    metrics={'auc': 0.9526, 'log_loss': 0.21, 'example_count': 500},
    baseline_metrics={'auc': 0.9554, 'log_loss': 0.2, 'example_count': 500},
    slices={
      f'hour={h}': {'example_count': 50, 'auc': 0.9 + h / 100, 'log_loss': 0.2} for h in (1, 2)
    },
    baseline_slices={
      f'hour={h}': {'example_count': 50, 'auc': 0.91, 'log_loss': 0.25} for h in (1, 2)
    },
    config={'trainer': {'train_steps': 300, 'hparams': {'learning_rate': 0.03}}},
    components=[{'name': 'Trainer', 'state': 'executed', 'seconds': 12.345}],
  )
  page = html_report.write(summary, config, [rollback, earlier])
  text = page.read_text()
  assert 'class="decision neutral"' in text and 'beyond the noise' in text
  # Every metric beside the serving model's, with the difference.
  assert re.search(r'<td>auc</td>\s*<td>0\.9526</td>\s*<td>0\.9554</td>\s*<td>-0\.0028</td>', text)
  # Per slice: each metric and its delta (hour=2: 0.92 - 0.91).
  assert (
    'auc \N{GREEK CAPITAL LETTER DELTA}' in text
    and 'log_loss \N{GREEK CAPITAL LETTER DELTA}' in text
  )
  assert re.search(r'<td>hour=2</td>\s*<td>50</td>\s*<td>0\.9200</td>\s*<td>0\.0100</td>', text)
  assert re.search(r'<td>learning_rate</td>\s*<td>0\.0300</td>', text)
  assert re.search(r'<td>trainer\.train_steps</td>\s*<td>300</td>', text)
  # The trend lists the rollback between the runs, by run id.
  trend = text[text.index('id="trend"') :]
  assert (
    trend.index('20261123T030000-cccc')
    < trend.index('20261123T020000-bbbb')
    < trend.index('20261123T010000-aaaa')
  )
  assert '<a href="../20261123T010000-aaaa/report.html">' in text  # the run before
  index = (config.runs_dir / 'index.html').read_text()
  for run_id in ('20261123T030000-cccc', '20261123T010000-aaaa'):
    assert f'<a href="{run_id}/report.html">{run_id}</a>' in index
  assert 'version 1 serves again (as 3)' in index
  images, decoded = rendered_images(page)
  assert images == decoded == 4  # the gate, the metrics, the slices, the trend
  images, decoded = rendered_images(config.runs_dir / 'index.html')
  assert images == decoded == 1


def test_a_cached_rerun_report_and_index_need_no_tensorflow(tmp_path):
  """The rerun answered from its record writes its report and the index
  without importing TensorFlow (seconds of a one-second answer)."""
  import subprocess
  import sys
  import textwrap

  # A version in the serving directory, which verifying would read with TensorFlow.
  (tmp_path / 'serving' / '1').mkdir(parents=True)
  (tmp_path / 'serving' / '1' / 'saved_model.pb').write_bytes(b'not read')
  code = textwrap.dedent(f"""
    import sys
    from pipeline.config import load_config
    from pipeline.record import RunSummary
    from pipeline.views import html_report
    config = load_config(overrides=['output_root={tmp_path}'])
    earlier = RunSummary(run_id='20261123T010000-aaaa', status='succeeded', outcome='pushed',
                         pushed_version=1, serving_path='/s/1',
                         gate={{'metric': 'auc', 'candidate': 0.91}})
    summary = RunSummary(run_id='20261123T020000-bbbb', status='succeeded',
                         outcome='nothing_new', unchanged_since=earlier.run_id,
                         metrics={{'auc': 0.91}}, gate={{'metric': 'auc', 'candidate': 0.91}})
    html_report.write(summary, config, [earlier])
    print('tensorflow' in sys.modules)
  """)
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
  assert result.stdout.strip() == 'False', result.stderr[-2000:]
  assert (
    'serving at the end of the newest one: /s/1' in (tmp_path / 'runs' / 'index.html').read_text()
  )
