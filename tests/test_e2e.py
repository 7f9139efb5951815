"""The whole pipeline through the CLI on a sample of the data, then reruns and bad input.

The tests share one output root and run in file order: the first run pushes a
model, the second must be fully cached, and every bad-input run must leave
that serving model untouched.
"""

import json
import os

import pytest

from components import serving
from tests.conftest import read_rows, run_pipeline, sample_workspace, serialize

pytestmark = pytest.mark.e2e
SAMPLE_ROWS = 3000
COMPONENTS = ['CsvExampleGen', 'StatisticsGen', 'SchemaGen', 'ExampleValidator', 'Transform',
              'Trainer', 'Evaluator', 'Pusher']


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
  return sample_workspace(tmp_path_factory.mktemp('e2e'), SAMPLE_ROWS)


def run_cli(root, *overrides, data_root=None):
  """Runs `python -m pipeline run` on the sample; returns (process, summary)."""
  return run_pipeline(root, 'trainer.train_steps=300', 'trainer.eval_steps=20',
                      'evaluator.threshold=0.75', *overrides, data_root=data_root)


def states(summary):
  return {c['name']: c['state'] for c in summary['components']}


@pytest.fixture(scope='module')
def first_run(workspace):
  return run_cli(workspace)


def test_first_run_blesses_and_pushes(first_run, workspace):
  process, summary = first_run
  assert process.returncode == 0, process.stdout + process.stderr
  assert summary['status'] == 'succeeded'
  assert states(summary) == {name: 'executed' for name in COMPONENTS}
  assert summary['blessed'] is True
  assert summary['metrics']['auc'] >= 0.75
  assert {'auc', 'accuracy', 'precision', 'recall', 'calibration', 'example_count'} <= set(summary['metrics'])
  assert any(key.startswith('trip_start_hour=') for key in summary['slices'])
  assert os.path.isabs(summary['pushed_path'])
  assert summary['pushed_path'] == serving.latest(str(workspace / 'out' / 'serving')).path
  run_summary = workspace / 'out' / 'runs' / summary['run_id'] / 'summary.json'
  assert json.loads(run_summary.read_text()) == summary
  # Progress and the summary on the console; library logs only in the log file.
  assert len(process.stdout.splitlines()) < 20
  assert 'pushed:' in process.stdout and 'CsvExampleGen' in process.stdout
  assert os.path.getsize(summary['log_file']) > 10_000


def test_every_execution_is_complete_in_mlmd(first_run, workspace):
  from ml_metadata.proto import metadata_store_pb2

  from pipeline.report import open_store
  _, summary = first_run
  store = open_store(workspace / 'out' / 'metadata.sqlite')
  run = store.get_context_by_type_and_name('pipeline_run', summary['run_id'])
  executions = store.get_executions_by_context(run.id)
  assert len(executions) == len(COMPONENTS)
  assert all(e.last_known_state == metadata_store_pb2.Execution.COMPLETE for e in executions)


def test_pushed_model_predicts_from_raw_examples(first_run, raw_feature_spec):
  _, summary = first_run
  predict = serving.load_predictor(summary['pushed_path'])
  rows = read_rows(50)
  probabilities = predict([serialize(r, raw_feature_spec) for r in rows])
  labels = [float(r['tips']) > 0.2 * float(r['fare']) for r in rows]
  assert probabilities.shape == (50,)
  # Better than chance on rows it may have trained on: a sanity check of the wiring.
  assert probabilities[labels].mean() > probabilities[[not l for l in labels]].mean()


def test_second_run_trains_nothing_and_pushes_nothing(first_run, workspace):
  versions_before = serving.versions(str(workspace / 'out' / 'serving'))
  process, summary = run_cli(workspace)
  assert process.returncode == 0, process.stderr
  assert states(summary) == {name: 'cached' for name in COMPONENTS}
  assert summary['pushed_path'] is None
  assert serving.versions(str(workspace / 'out' / 'serving')) == versions_before
  assert summary['wall_seconds'] < first_run[1]['wall_seconds']


def _bad_data(workspace, name, text):
  directory = workspace / name
  directory.mkdir()
  if text is not None:
    (directory / 'data.csv').write_text(text)
  return directory


def _assert_failed_untouched(workspace, first_run, process, summary, *needles):
  """The run failed with messages containing `needles`; the first run's model still serves."""
  assert process.returncode == 1
  assert summary['status'] == 'failed'
  assert summary['pushed_path'] is None
  for needle in needles:
    assert needle in process.stderr, process.stderr
  assert serving.versions(str(workspace / 'out' / 'serving')) == [first_run[1]['pushed_version']]


def test_text_in_a_numeric_column_is_an_anomaly_naming_the_feature(first_run, workspace):
  lines = (workspace / 'data' / 'data.csv').read_text().splitlines(keepends=True)
  header = lines[0].rstrip('\n').split(',')
  cells = lines[10].rstrip('\n').split(',')
  cells[header.index('fare')] = 'twelve dollars'
  lines[10] = ','.join(cells) + '\n'
  data = _bad_data(workspace, 'text_in_fare', ''.join(lines))
  process, summary = run_cli(workspace, data_root=data)
  _assert_failed_untouched(workspace, first_run, process, summary, 'data validation failed', 'fare')
  assert states(summary)['ExampleValidator'] == 'failed'
  assert states(summary)['Trainer'] == 'skipped'


def test_wrong_number_of_cells_names_file_and_line(first_run, workspace):
  lines = (workspace / 'data' / 'data.csv').read_text().splitlines(keepends=True)
  lines[41] = '1,2,3\n'
  data = _bad_data(workspace, 'short_row', ''.join(lines))
  process, summary = run_cli(workspace, data_root=data)
  _assert_failed_untouched(workspace, first_run, process, summary, f'{data / "data.csv"} line 42: 3 cells')
  assert states(summary)['CsvExampleGen'] == 'skipped'


def test_header_only_csv(first_run, workspace):
  header = (workspace / 'data' / 'data.csv').read_text().splitlines(keepends=True)[0]
  data = _bad_data(workspace, 'header_only', header)
  process, summary = run_cli(workspace, data_root=data)
  _assert_failed_untouched(workspace, first_run, process, summary, 'header but no data rows')


def test_missing_and_empty_data_directory(first_run, workspace):
  process, summary = run_cli(workspace, data_root=workspace / 'nowhere')
  _assert_failed_untouched(workspace, first_run, process, summary, 'nowhere does not exist')
  process, summary = run_cli(workspace, data_root=_bad_data(workspace, 'empty', None))
  _assert_failed_untouched(workspace, first_run, process, summary, 'has no files')


def test_bad_config_value_runs_nothing(first_run, workspace):
  process, summary = run_cli(workspace, 'evaluator.threshold=high')
  assert process.returncode == 2
  assert summary is None
  assert "config key 'evaluator.threshold'" in process.stderr
  assert len(serving.versions(str(workspace / 'out' / 'serving'))) == 1
