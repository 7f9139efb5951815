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
