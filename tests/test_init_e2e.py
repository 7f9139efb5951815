"""`pipeline init` + `pipeline run` on a small non-taxi table per task, as a new user would.

Each table (tests.tables) is a few hundred rows with a real signal. The four
projects (one per task, and the binary one again with its model swapped for a
canned Estimator by editing only its package) are made and run at the same
time, to keep the suite short; each run is checked afterwards.
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from components import serving
from components.ids import ALL as COMPONENTS
from tests.conftest import serialize
from tests.tables import HOSTILE_NAMES, LABELS, label_std, write_table

pytestmark = pytest.mark.e2e
ROWS = 400
PROJECTS = {
  'binary': 'binary',
  'multiclass': 'multiclass',
  'regression': 'regression',
  'swapped': 'binary',
  'wide_deep': 'multiclass',  # made with `init --model wide_deep`
}

# A user's own Estimator: TF's canned LinearClassifier over the same features.
CANNED = """
import tensorflow as tf
from tensorflow import estimator as tf_estimator

from {package}.features import FEATURES, Kind, num_ids, transformed_name


def build(run_config, warm_start):
  columns = [
      tf.feature_column.numeric_column(transformed_name(key), shape=(2,))
      if feature.kind is Kind.NUMERIC
      else tf.feature_column.categorical_column_with_identity(
          transformed_name(key), num_buckets=num_ids(feature), default_value=0)
      for key, feature in FEATURES.items()]
  return tf_estimator.LinearClassifier(columns, config=run_config, warm_start_from=warm_start)
"""
ORIGINAL_ESTIMATOR = """    estimator = tf_estimator.Estimator(
      model_fn=model.model_fn,
      config=run_config,
      warm_start_from=warm_start,
      params={**hp, 'task': args['task']},
    )"""


def _swap_in_canned_estimator(project: pathlib.Path):
  (package,) = [p for p in project.iterdir() if p.name.endswith('_model')]
  (package / 'own.py').write_text(CANNED.replace('{package}', package.name))
  trainer = package / 'trainer.py'
  text = trainer.read_text()
  assert ORIGINAL_ESTIMATOR in text
  trainer.write_text(
    text.replace(ORIGINAL_ESTIMATOR, '    estimator = own.build(run_config, warm_start)').replace(
      f'from {package.name} import canned, inputs, model',
      f'from {package.name} import canned, inputs, own',
    )
  )


@pytest.fixture(scope='module')
def projects(tmp_path_factory):
  """name -> (project dir, table, init process, run process, summary)."""
  root = tmp_path_factory.mktemp('init')
  tables = {
    task: write_table(root / 'tables' / task / f'{task}.csv', task, ROWS, seed=1)
    for task in set(PROJECTS.values())
  }
  # The canned model (TF variables named after features) reads a header from anywhere.
  tables['wide_deep'] = write_table(
    root / 'tables' / 'hostile' / 'multiclass.csv', 'multiclass', ROWS, seed=1, names=HOSTILE_NAMES
  )

  def table(name):
    return tables.get(name, tables[PROJECTS[name]])

  def start(*args):
    return subprocess.Popen(
      [sys.executable, '-m', 'pipeline', *args],
      cwd=root,
      text=True,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
    )

  inits = {
    name: start(
      'init',
      str(root / name),
      '--data',
      str(table(name)),
      '--label',
      LABELS[task],
      '--task',
      task,
      *(['--model', name] if name == 'wide_deep' else []),
    )
    for name, task in PROJECTS.items()
  }
  outputs = {name: process.communicate(timeout=600) for name, process in inits.items()}
  for name, process in inits.items():
    assert process.returncode == 0, outputs[name]
  _swap_in_canned_estimator(root / 'swapped')
  runs = {name: start('run', '--config', str(root / name / 'pipeline.yaml')) for name in PROJECTS}
  results = {}
  for name, process in runs.items():
    stdout, stderr = process.communicate(timeout=900)
    summary_file = root / name / 'outputs' / 'latest_summary.json'
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else None
    results[name] = (
      root / name,
      table(name),
      outputs[name],
      (process.returncode, stdout, stderr),
      summary,
    )
  return results


def _raw_spec(project):
  import tensorflow_data_validation as tfdv
  from tensorflow_transform.tf_metadata import schema_utils

  schema = tfdv.load_schema_text(str(project / 'schema.pbtxt'))
  return schema_utils.schema_as_feature_spec(schema).feature_spec


def _rows(table, n=60):
  import csv
  import itertools

  with open(table, newline='') as f:
    return list(itertools.islice(csv.DictReader(f), n))


@pytest.mark.parametrize('name', list(PROJECTS))
def test_init_then_run_blesses_and_pushes(projects, name):
  project, _, (init_out, _), (code, stdout, stderr), summary = projects[name]
  assert 'python -m pipeline run --config' in init_out
  assert code == 0, stdout + stderr
  assert summary['status'] == 'succeeded'
  assert {c['name']: c['state'] for c in summary['components']} == dict.fromkeys(
    COMPONENTS, 'executed'
  )
  assert summary['blessed'] is True
  assert summary['pushed_path'] == serving.latest(str(project / 'outputs' / 'serving')).path
  gate = summary['gate']
  assert gate['candidate'] == summary['metrics'][gate['metric']]
  assert f'gate: {gate["metric"]}' in stdout and 'AUC' not in stdout.replace('auc', '')


def test_binary_metrics(projects):
  summary = projects['binary'][4]
  assert summary['gate']['metric'] == 'auc'
  assert {
    'auc',
    'log_loss',
    'accuracy',
    'precision',
    'recall',
    'calibration',
    'example_count',
  } <= set(summary['metrics'])
  assert summary['metrics']['auc'] > 0.8


def test_multiclass_metrics_are_multiclass(projects):
  summary = projects['multiclass'][4]
  metrics = summary['metrics']
  assert summary['gate']['metric'] == 'accuracy'
  assert {'accuracy', 'log_loss', 'example_count'} <= set(metrics)
  assert set(summary['per_class']) == {'setosa', 'versicolor', 'virginica'}
  matrix = np.array(summary['confusion_matrix'])
  assert matrix.shape == (3, 3) and matrix.sum() == metrics['example_count']
  # The real multi-class accuracy: the confusion matrix's diagonal.
  assert metrics['accuracy'] == pytest.approx(np.trace(matrix) / matrix.sum(), abs=1e-6)
  assert metrics['accuracy'] > 0.6


def test_regression_metrics_are_on_the_label_scale(projects):
  _, table, _, _, summary = projects['regression']
  metrics = summary['metrics']
  assert summary['gate']['metric'] == 'rmse'
  assert {'rmse', 'mae', 'mse', 'mean_label', 'mean_prediction', 'example_count'} <= set(metrics)
  # Far better than predicting the mean (whose RMSE is the label's spread).
  assert metrics['rmse'] < 0.5 * label_std(table, 'price')
  assert metrics['mean_prediction'] == pytest.approx(metrics['mean_label'], rel=0.05)


def test_pushed_binary_model_serves_probabilities(projects):
  project, table, _, _, summary = projects['binary']
  rows = _rows(table)
  predict = serving.load_predictor(summary['pushed_path'], 'logistic')
  p = predict([serialize(r, _raw_spec(project), drop=('churned',)) for r in rows])
  labels = np.array([r['churned'] == 'yes' for r in rows])
  assert p.shape == (len(rows),) and np.all((p >= 0) & (p <= 1))
  assert p[labels].mean() > p[~labels].mean() + 0.3


def test_pushed_multiclass_model_serves_a_distribution(projects):
  project, table, _, _, summary = projects['multiclass']
  rows = _rows(table)
  predict = serving.load_predictor(summary['pushed_path'], 'probabilities')
  p = predict([serialize(r, _raw_spec(project), drop=('species',)) for r in rows])
  assert p.shape == (len(rows), 3)
  np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
  classes = ['setosa', 'versicolor', 'virginica']
  truth = np.array([classes.index(r['species']) for r in rows])
  assert (p.argmax(axis=1) == truth).mean() > 0.6


def test_pushed_regression_model_predicts_the_label(projects):
  project, table, _, _, summary = projects['regression']
  rows = _rows(table)
  predict = serving.load_predictor(summary['pushed_path'], 'predictions')
  y = predict([serialize(r, _raw_spec(project), drop=('price',)) for r in rows])
  truth = np.array([float(r['price']) for r in rows])
  assert y.shape == (len(rows),)
  assert np.sqrt(np.mean((y - truth) ** 2)) < 0.5 * truth.std()


def test_a_swapped_in_canned_estimator_runs_unchanged(projects):
  project, table, _, _, summary = projects['swapped']
  assert summary['metrics']['auc'] > 0.8
  predict = serving.load_predictor(summary['pushed_path'], 'logistic')
  rows = _rows(table, 10)
  assert predict([serialize(r, _raw_spec(project), drop=('churned',)) for r in rows]).shape == (10,)


def _predict_cli(project, rows, tmp_path):
  """`python -m pipeline predict` on `rows` written as CSV, one `score` cell as R writes NA."""
  import csv

  rows = [dict(r) for r in rows]
  (score,) = [name for name in rows[0] if name.startswith('score')]
  rows[0][score] = 'NA'
  data = tmp_path / 'rows.csv'
  with open(data, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  result = subprocess.run(
    [sys.executable, '-m', 'pipeline', 'predict', '--config', str(project / 'pipeline.yaml'), data],
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr
  return list(csv.reader(result.stdout.splitlines())), rows


def test_predict_serves_csv_rows_with_class_names(projects, tmp_path):
  project, table, _, _, summary = projects['binary']
  out, rows = _predict_cli(project, _rows(table, 20), tmp_path)
  assert out[0] == ['class', 'p(no)', 'p(yes)']
  rows[0]['score'] = ''  # what the CLI sent for NA
  predict = serving.load_predictor(summary['pushed_path'], 'logistic')
  expected = predict([serialize(r, _raw_spec(project), drop=('churned',)) for r in rows])
  got = np.array([float(line[2]) for line in out[1:]])
  np.testing.assert_allclose(got, expected, atol=1e-5)
  assert [line[0] for line in out[1:]] == ['yes' if p > 0.5 else 'no' for p in expected]


def test_predict_serves_regression_values(projects, tmp_path):
  project, table, _, _, _ = projects['regression']
  out, _ = _predict_cli(project, _rows(table, 20), tmp_path)
  assert out[0] == ['prediction'] and len(out) == 21
  truth = np.array([float(r['price']) for r in _rows(table, 20)])
  assert np.sqrt(np.mean((np.array([float(v) for (v,) in out[1:]]) - truth) ** 2)) < truth.std()


def test_a_canned_classifier_serves_the_class_names(projects, tmp_path):
  """Its table's header holds every hostile form (tests.tables.HOSTILE_NAMES):
  the names stay data, and the model is trained, sliced and served by them."""
  project, table, (init_out, _), _, summary = projects['wide_deep']
  assert 'estimator: wide_deep' in (project / 'pipeline.yaml').read_text()
  assert not list(project.parent.rglob('PWNED'))
  for name in HOSTILE_NAMES.values():
    assert repr(name) in init_out
  assert any(key.startswith(HOSTILE_NAMES['city'] + '=') for key in summary['slices'])
  assert summary['metrics']['accuracy'] > 0.6
  out, rows = _predict_cli(project, _rows(table, 30), tmp_path)
  assert out[0] == ['class', 'p(setosa)', 'p(versicolor)', 'p(virginica)']
  assert sum(line[0] == row['species'] for line, row in zip(out[1:], rows, strict=True)) > 18
