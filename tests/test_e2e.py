"""The whole pipeline through the CLI on a sample of the data, then reruns, bad input and the gate.

The tests share one output root and run in file order: the first run pushes a
model, the second must be fully cached, and every bad-input run must leave
that serving model untouched. Faults are in test_faults_e2e.py.
"""

import json
import os
import re

import pytest

from components import serving
from components.ids import ALL as COMPONENTS
from pipeline.console import CHECKS
from pipeline.record import (
  EXIT_DATA_REFUSED,
  EXIT_FAILED,
  EXIT_NOT_PUSHED,
  EXIT_NOTHING_NEW,
  EXIT_PUSHED,
)
from tests.conftest import (
  SMALL_RUN,
  read_rows,
  rendered_images,
  run_cli,
  run_pipeline,
  serialize,
  states,
)

pytestmark = pytest.mark.e2e


def test_first_run_blesses_and_pushes(first_run, workspace):
  process, summary = first_run
  assert process.returncode == 0, process.stdout + process.stderr
  assert summary['status'] == 'succeeded'
  assert states(summary) == dict.fromkeys(COMPONENTS, 'executed')
  assert summary['blessed'] is True
  assert summary['metrics']['auc'] >= 0.75
  assert {'auc', 'accuracy', 'precision', 'recall', 'calibration', 'example_count'} <= set(
    summary['metrics']
  )
  # Live progress: each component's start, and the Estimator's steps, loss and pace.
  assert f'  {"Trainer":<26} running' in process.stdout
  assert re.search(r'^    step \d+/300 \(\d+%\)  loss \d', process.stdout, re.M), process.stdout
  assert 'tensorflow' not in process.stdout and 'INFO' not in process.stderr
  log = (workspace / 'out' / 'runs' / summary['run_id'] / 'pipeline.log').read_text()
  assert len(re.findall(r'loss = [0-9.]+, step = 100\b', log)) == 1  # each TF line once
  # The report: one self-contained page whose plots a browser draws.
  report = workspace / 'out' / 'runs' / summary['run_id'] / 'report.html'
  assert summary['report'] == str(report) and f'report: {report}' in process.stdout
  text = report.read_text()
  for section in ('Decision', 'Metrics', 'Per slice', 'Calibration', 'Training', 'Data'):
    assert re.search(rf'<h2( id="[a-z]+")?>{section}</h2>', text), section
  assert '<h2 id="parameters">Parameters</h2>' in text
  assert '<h2 id="trend">auc over runs</h2>' in text
  index = workspace / 'out' / 'runs' / 'index.html'
  assert f'href="{summary["run_id"]}/report.html"' in index.read_text()
  assert 'src="http' not in text and 'href="http' not in text  # nothing fetched from a server
  images, decoded = rendered_images(report)
  assert images == decoded >= 5  # metrics, slices, calibration, loss curve, trend
  hours = [key.removeprefix('trip_start_hour=') for key in summary['slices']]
  assert hours and [int(h) for h in hours] == sorted(int(h) for h in hours)  # 0, 1, 2, ..., 23
  assert all(isinstance(m['example_count'], int) for m in summary['slices'].values())
  assert os.path.isabs(summary['pushed_path'])
  assert summary['pushed_path'] == serving.latest(str(workspace / 'out' / 'serving')).path
  run_summary = workspace / 'out' / 'runs' / summary['run_id'] / 'summary.json'
  assert json.loads(run_summary.read_text()) == summary
  # Progress and the summary on the console; library logs only in the log file.
  known = (
    'run ',
    *(f'  {name:<26} ' for name in (CHECKS, *COMPONENTS)),
    '    step ',
    *(f'    {name} still running (' for name in (CHECKS, *COMPONENTS)),
    'eval metrics: ',
    'trained: ',
    'gate: ',
    'blessed: ',
    'pushed: ',
    'serving: ',
    'report: ',
    'succeeded in ',
  )
  assert [line for line in process.stdout.splitlines() if not line.startswith(known)] == []
  said = [line for line in process.stdout.splitlines() if 'still running (' not in line]
  assert len(said) < 2 * len(COMPONENTS) + 15
  assert 'pushed:' in process.stdout and 'CsvExampleGen' in process.stdout
  assert 'trained: no model is serving yet; trained from scratch' in process.stdout
  assert re.search(r'^  checks +passed ', process.stdout, re.M)
  assert os.path.getsize(summary['log_file']) > 10_000


def test_every_execution_is_complete_in_mlmd(first_run, workspace):
  from ml_metadata.proto import metadata_store_pb2

  from pipeline.service.mlmd import open_store

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
  assert probabilities[labels].mean() > probabilities[[not label for label in labels]].mean()


def test_second_run_trains_nothing_and_pushes_nothing(first_run, workspace):
  versions_before = serving.versions(str(workspace / 'out' / 'serving'))
  process, summary = run_cli(workspace)
  assert process.returncode == EXIT_NOTHING_NEW, process.stderr
  assert summary['outcome'] == 'nothing_new'
  assert states(summary) == dict.fromkeys(COMPONENTS, 'cached')
  assert summary['pushed_path'] is None
  assert serving.versions(str(workspace / 'out' / 'serving')) == versions_before
  assert summary['wall_seconds'] < first_run[1]['wall_seconds']
  # Answered from the first run's record, without TensorFlow.
  assert summary['unchanged_since'] == first_run[1]['run_id']


def test_a_model_below_the_gate_is_not_pushed_exit_3(first_run, workspace):
  versions_before = serving.versions(str(workspace / 'out' / 'serving'))
  process, summary = run_cli(workspace, 'evaluator.threshold=0.999')
  assert process.returncode == EXIT_NOT_PUSHED, process.stderr
  assert summary['outcome'] == 'not_pushed' and summary['blessed'] is False
  assert states(summary)['Trainer'] == 'cached' and states(summary)['Evaluator'] == 'executed'
  assert 'blessed: no (auc ' in process.stdout and '< threshold 0.999' in process.stdout
  assert serving.versions(str(workspace / 'out' / 'serving')) == versions_before


def _bad_data(workspace, name, text):
  directory = workspace / name
  directory.mkdir()
  if text is not None:
    (directory / 'data.csv').write_text(text)
  return directory


def _assert_failed_untouched(workspace, first_run, process, summary, *needles, code=EXIT_FAILED):
  """The run failed (exit `code`) with messages containing `needles`; the first run's
  model still serves."""
  assert process.returncode == code, process.stderr
  assert summary['status'] == 'failed'
  assert summary['pushed_path'] is None
  for needle in needles:
    assert needle in process.stderr, process.stderr
  assert serving.versions(str(workspace / 'out' / 'serving')) == [first_run[1]['pushed_version']]


def test_wrong_number_of_cells_names_file_and_line(first_run, workspace):
  lines = (workspace / 'data' / 'data.csv').read_text().splitlines(keepends=True)
  lines[41] = '1,2,3\n'
  data = _bad_data(workspace, 'short_row', ''.join(lines))
  process, summary = run_cli(workspace, data_root=data)
  _assert_failed_untouched(
    workspace,
    first_run,
    process,
    summary,
    f'{data / "data.csv"} line 42: 3 cells',
    code=EXIT_DATA_REFUSED,
  )
  assert states(summary)['CsvExampleGen'] == 'skipped'
  assert summary['outcome'] == 'data_refused'


def test_header_only_csv(first_run, workspace):
  header = (workspace / 'data' / 'data.csv').read_text().splitlines(keepends=True)[0]
  data = _bad_data(workspace, 'header_only', header)
  process, summary = run_cli(workspace, data_root=data)
  _assert_failed_untouched(
    workspace, first_run, process, summary, 'header but no data rows', code=EXIT_DATA_REFUSED
  )


def test_missing_and_empty_data_directory(first_run, workspace):
  """The config names a folder without data: a config mistake, nothing ran."""
  for data, needle in [
    (workspace / 'nowhere', 'nowhere does not exist'),
    (_bad_data(workspace, 'empty', None), "has no files matching '*'"),
  ]:
    process, summary = run_cli(workspace, data_root=data)
    assert process.returncode == 2 and summary is None
    assert f"error: config key 'data_root': {data}" in process.stderr and needle in process.stderr
    assert process.stderr.strip().count('\n') == 0
  assert serving.versions(str(workspace / 'out' / 'serving')) == [first_run[1]['pushed_version']]


def test_bad_config_value_runs_nothing(first_run, workspace):
  process, summary = run_cli(workspace, 'evaluator.threshold=high')
  assert process.returncode == 2
  assert summary is None
  assert "config key 'evaluator.threshold'" in process.stderr
  assert len(serving.versions(str(workspace / 'out' / 'serving'))) == 1


def test_each_anomaly_is_named_on_a_line_of_its_own(first_run, workspace):
  # Three kinds of bad data in one file, one run: text in a numeric column,
  # infinite numbers (2% of rows) and a label that holds one value.
  lines = (workspace / 'data' / 'data.csv').read_text().splitlines(keepends=True)
  header = lines[0].rstrip('\n').split(',')
  tips, trip_miles, fare = (header.index(c) for c in ('tips', 'trip_miles', 'fare'))
  for i in range(1, len(lines)):
    cells = lines[i].rstrip('\n').split(',')
    cells[tips] = '0'
    if i % 50 == 1:
      cells[trip_miles] = '1e39'
    if i == 10:
      cells[fare] = 'twelve dollars'
    lines[i] = ','.join(cells) + '\n'
  data = _bad_data(workspace, 'anomalies', ''.join(lines))
  process, summary = run_cli(workspace, data_root=data)
  _assert_failed_untouched(
    workspace, first_run, process, summary, 'data validation failed', code=EXIT_DATA_REFUSED
  )
  found = process.stderr.splitlines()
  for feature, words in (
    ('fare', ()),
    ('trip_miles', ('Inf',)),
    ('tips', ('the label holds a single value',)),
  ):
    assert [line for line in found if feature in line and all(w in line for w in words)], (
      feature,
      process.stderr,
    )
  assert states(summary)['ExampleValidator'] == 'failed'
  assert states(summary)['Trainer'] == 'skipped'


def test_a_worse_model_is_held_back_unless_a_person_replaces_the_serving_one(first_run, workspace):
  """The comparison with the serving model is on the same eval rows, with a
  jackknife interval, of the very AUCs TFMA reports: a model worse beyond the
  noise is not pushed; with `--replace-serving REASON` it is, and the run's
  record keeps the reason."""
  serving_dir = str(workspace / 'out' / 'serving')
  before = serving.versions(serving_dir)
  worse = ('trainer.train_steps=1', 'trainer.warm_start=false', 'evaluator.threshold=0.3')
  process, summary = run_cli(workspace, *worse)
  assert process.returncode == EXIT_NOT_PUSHED, process.stderr
  change = summary['gate']['change']
  assert change['verdict'] == 'worse' and change['blocks'] is True
  assert change['low'] <= change['diff'] <= change['high'] < 0
  gate = summary['gate']
  assert change['diff'] == pytest.approx(gate['candidate'] - gate['serving'], abs=1e-9)
  assert 'beyond the noise' in summary['blessing_reason'] and '95% interval' in process.stdout
  assert serving.versions(serving_dir) == before

  reason = 'the serving model: leaky feature'
  process, summary = run_pipeline(
    workspace, *SMALL_RUN, *worse, flags=['--replace-serving', reason]
  )
  assert process.returncode == EXIT_PUSHED, process.stderr
  assert states(summary)['Trainer'] == 'cached'
  assert summary['gate']['change']['replace_reason'] == reason
  assert f'replacing it: {reason}' in summary['blessing_reason']
  assert serving.versions(serving_dir) == [*before, summary['pushed_version']]
  record = json.loads((workspace / 'out' / 'runs' / summary['run_id'] / 'summary.json').read_text())
  assert record['gate']['change']['replace_reason'] == reason
