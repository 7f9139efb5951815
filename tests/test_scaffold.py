"""`pipeline init`'s decisions from a table, without running TFDV or TF."""

import pathlib

import pytest

from pipeline import cli
from pipeline.scaffold import init as scaffold
from tests.tables import LABELS, write_table


def _columns(tmp_path, task, rows=200):
  table = write_table(tmp_path / f'{task}.csv', task, rows)
  return scaffold.read_columns([str(table)])


def test_feature_kinds_follow_the_column_types(tmp_path):
  columns, rows = _columns(tmp_path, 'binary')
  features, left_out, decisions = scaffold.feature_kinds(columns, rows, 'churned')
  assert features == {
    'size': ('NUMERIC', 0),
    'age': ('NUMERIC', 0),
    'city': ('CATEGORICAL', 4),
    'plan': ('CATEGORICAL', 3),
    'score': ('NUMERIC', 0),
  }
  assert 'churned' not in features  # the label
  assert 'names rows' in left_out['customer_id']
  assert set(decisions) == set(features) | set(left_out)
  assert decisions['score'] == 'numeric: a number, 177 distinct values, missing in 20 of 200 rows'
  assert decisions['city'] == 'categorical: text, 4 values'


@pytest.mark.parametrize(
  'task, section, metric',
  [
    ('binary', {'type': 'binary', 'label': 'churned', 'classes': ['no', 'yes']}, 'auc'),
    (
      'multiclass',
      {'type': 'multiclass', 'label': 'species', 'classes': ['setosa', 'versicolor', 'virginica']},
      'accuracy',
    ),
    ('regression', {'type': 'regression', 'label': 'price'}, 'rmse'),
  ],
)
def test_task_config_from_the_label(tmp_path, task, section, metric):
  columns, rows = _columns(tmp_path, task)
  got_section, gate, hparams = scaffold.task_config(task, columns[LABELS[task]], rows)
  assert got_section == section
  assert gate['metric'] == metric
  if task == 'regression':
    # The bar is the RMSE of predicting the mean; predictions are put on the label's scale.
    assert gate['threshold'] == hparams['label_std'] > 0
    assert 2000 < hparams['label_mean'] < 4000
  if task == 'multiclass':
    assert 1 / 3 <= gate['threshold'] < 1  # the most frequent class's share


def test_integer_labels_are_class_ids(tmp_path):
  path = tmp_path / 't.csv'
  path.write_text('x,y\n' + ''.join(f'{i},{i % 3}\n' for i in range(30)))
  columns, rows = scaffold.read_columns([str(path)])
  section, _, _ = scaffold.task_config('multiclass', columns['y'], rows)
  assert section == {'type': 'multiclass', 'label': 'y', 'num_classes': 3}
  path.write_text('x,y\n' + ''.join(f'{i},{i % 2}\n' for i in range(30)))
  columns, rows = scaffold.read_columns([str(path)])
  section, _, _ = scaffold.task_config('binary', columns['y'], rows)
  assert section == {'type': 'binary', 'label': 'y'}  # a 0/1 label needs no classes


@pytest.mark.parametrize(
  'task, label, message',
  [
    ('regression', 'churned', 'not numeric'),
    ('binary', 'species', 'did you mean --task multiclass'),
    ('multiclass', 'price', 'did you mean --task regression'),
  ],
)
def test_a_label_that_does_not_fit_the_task(tmp_path, task, label, message):
  source = {'churned': 'binary', 'species': 'multiclass', 'price': 'regression'}[label]
  columns, rows = _columns(tmp_path, source)
  with pytest.raises(ValueError, match=message):
    scaffold.task_config(task, columns[label], rows)


def test_empty_labels_are_refused(tmp_path):
  path = tmp_path / 't.csv'
  path.write_text('x,y\n1,0\n2,\n3,1\n')
  columns, rows = scaffold.read_columns([str(path)])
  with pytest.raises(ValueError, match='empty in 1 of 3 rows'):
    scaffold.task_config('binary', columns['y'], rows)


def test_package_and_pipeline_names():
  assert scaffold.package_name(pathlib.Path('/x/My Churn-2024')) == 'my_churn_2024_model'
  assert scaffold.package_name(pathlib.Path('/x/2024')) == 'p_2024_model'


def test_init_never_overwrites_without_force(tmp_path, capfd):
  table = write_table(tmp_path / 'data' / 't.csv', 'binary', 50)
  project = tmp_path / 'project'
  project.mkdir()
  (project / 'keep.txt').write_text('mine')
  code = cli.main(
    ['init', str(project), '--data', str(table), '--label', 'churned', '--task', 'binary']
  )
  assert code == 2
  assert 'exists; pass --force' in capfd.readouterr().err
  assert (project / 'keep.txt').read_text() == 'mine'


def test_init_errors_are_one_line(tmp_path, capfd):
  table = write_table(tmp_path / 'data' / 't.csv', 'binary', 50)
  code = cli.main(
    ['init', str(tmp_path / 'p'), '--data', str(table), '--label', 'nope', '--task', 'binary']
  )
  err = capfd.readouterr().err
  assert code == 2 and err.count('\n') == 1 and "--label 'nope' is not a column" in err
  assert not (tmp_path / 'p').exists()


def test_schema_command_never_overwrites_without_force(tmp_path, capsys):
  schema = tmp_path / 'schema.pbtxt'
  schema.write_text('# reviewed\n')
  code = cli.main(
    ['schema', '--set', f'schema_file={schema}', '--set', f'output_root={tmp_path / "out"}']
  )
  assert code == 1
  assert 'exists; pass --force' in capsys.readouterr().err
  assert schema.read_text() == '# reviewed\n'


@pytest.mark.parametrize('task, classes', [('binary', 2), ('multiclass', 3)])
def test_init_bounds_an_integer_label_to_its_class_ids(tmp_path, task, classes):
  from tensorflow_metadata.proto.v0 import schema_pb2

  from pipeline.scaffold import schema as schema_lib

  data = tmp_path / 'data' / 't.csv'
  data.parent.mkdir()
  data.write_text('x,target\n' + ''.join(f'{i * 0.5},{i % classes}\n' for i in range(60)))
  project = scaffold.init(tmp_path / 'project', data, 'target', task)
  schema = schema_lib.load(project / scaffold.SCHEMA_FILE)
  (label,) = [f for f in schema.feature if f.name == 'target']
  assert label.type == schema_pb2.INT
  assert (label.int_domain.min, label.int_domain.max) == (0, classes - 1)
  assert label.presence.min_fraction == 1.0


def test_ids_are_left_out_at_any_size(tmp_path):
  """Distinct values are counted exactly, not up to a cap, on a 54,000-row table."""
  import random

  rng = random.Random(0)
  shuffled = list(range(54_000))
  rng.shuffle(shuffled)
  path = tmp_path / 't.csv'
  with path.open('w') as f:
    f.write('row,order_id,ticket,carat,cut,price\n')
    for i in range(54_000):
      carat = round(rng.uniform(0.2, 3), 2)
      f.write(f'{i + 1},{shuffled[i]},T{shuffled[i]:06d},{carat},{rng.choice("ABCDE")},{i % 997}\n')
  columns, rows = scaffold.read_columns([str(path)])
  features, left_out, decisions = scaffold.feature_kinds(columns, rows, 'price')
  assert set(features) == {'carat', 'cut'}
  assert left_out == {
    'row': 'names rows: an integer rising with every row (54000 rows)',
    'order_id': 'names rows: an integer with a distinct value in each of 54000 rows',
    'ticket': 'names rows: 54000 distinct values in 54000 rows',
  }
  assert decisions['row'] == 'left out: ' + left_out['row']


def test_small_integers_are_codes_only_when_each_value_recurs(tmp_path):
  """mtcars-like: cylinders (3 values, about 10 rows each) are a code; horsepower
  (20 values in 32 rows) is a number that serving can extend."""
  path = tmp_path / 'cars.csv'
  lines = [f'{(4, 6, 8)[i % 3]},{90 + 10 * (i % 20)},{20 + i % 7}' for i in range(32)]
  path.write_text('cyl,hp,mpg\n' + '\n'.join(lines) + '\n')
  columns, rows = scaffold.read_columns([str(path)])
  features, _, decisions = scaffold.feature_kinds(columns, rows, 'mpg')
  assert features == {'cyl': ('CATEGORICAL', 3), 'hp': ('NUMERIC', 0)}
  assert decisions['cyl'] == 'categorical: an integer code, 3 values, about 10 rows each'
  assert decisions['hp'] == 'numeric: an integer, 20 distinct values'


HOSTILE = [
  'note\rimport os; os.system("touch PWNED") #',
  'a\nimport os; os.system("touch PWNED")',
  'quote\'s "double" \\ back',
  'hash # tail',
  'triple """ end',
  '<img src=x onerror=alert(2)>',
  'caf\u00e9 \u2028 sep',
]


def test_generated_python_holds_hostile_names_as_data(tmp_path, monkeypatch):
  """Header cells and a file name from anywhere become literals and comments, never code."""
  import csv

  data = tmp_path / 'in"""put.csv'
  with data.open('w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow([*HOSTILE, 'y'])
    for i in range(60):
      writer.writerow([f'{i * 0.5}', 'v' + str(i % 3), '1', str(i % 4), 'x', f'{i}', 'a', i % 2])
  columns, rows = scaffold.read_columns([str(data)])
  features, _, decisions = scaffold.feature_kinds(columns, rows, 'y')
  source = scaffold._features_py(features, decisions, data.name, rows)
  monkeypatch.chdir(tmp_path)
  namespace = {}
  exec(compile(source, 'features.py', 'exec'), namespace)
  assert set(namespace['FEATURES']) == set(features)
  assert set(decisions) == set(HOSTILE)
  assert not (tmp_path / 'PWNED').exists()
  for line in source.splitlines():
    assert not line.lstrip().startswith('import os')


def test_a_large_table_with_an_id_and_na_cells(tmp_path):
  """50,000 rows as R writes them: row names first, `NA` for a missing number.
  The id is left out, the NAs are missing numbers (in the schema too), and a
  text column keeps `NA` as a value."""
  import random

  from tensorflow_metadata.proto.v0 import schema_pb2

  from pipeline.scaffold import schema as schema_lib

  rng = random.Random(1)
  ids = list(range(1, 50_001))
  rng.shuffle(ids)
  data = tmp_path / 'data' / 't.csv'
  data.parent.mkdir()
  with data.open('w') as f:
    f.write('"rownames","weight","region","y"\n')
    for i in ids:
      weight = 'NA' if i % 7 == 0 else f'{rng.uniform(1, 9):.2f}'
      f.write(f'"{i}",{weight},"{rng.choice(["NA", "EU", "AS"])}",{i % 2}\n')
  decided = {}
  project = scaffold.init(tmp_path / 'project', data, 'y', 'binary', decided=decided)
  missing = sum(1 for i in ids if i % 7 == 0)
  assert decided == {
    'rownames': 'left out: names rows: an integer with a distinct value in each of 50000 rows',
    'weight': f'numeric: a number, {len(columns_of(data)["weight"].values)} distinct values, '
    f'missing in {missing} of 50000 rows',
    'region': 'categorical: text, 3 values',
  }
  schema = {f.name: f for f in schema_lib.load(project / scaffold.SCHEMA_FILE).feature}
  assert schema['weight'].type == schema_pb2.FLOAT
  # Optional: a missing cell is a feature with no values.
  assert schema['weight'].presence.min_fraction == 0.0
  assert (schema['weight'].value_count.min, schema['weight'].value_count.max) == (0, 1)
  assert schema['region'].type == schema_pb2.BYTES
  assert 'NA' in (project / 'pipeline.yaml').read_text()
  features_py = next(project.glob('*_model/features.py')).read_text()
  assert "'rownames': left out: names rows" in features_py
  assert "'weight': Feature(Kind.NUMERIC)" in features_py


def columns_of(path):
  return scaffold.read_columns([str(path)])[0]


def test_missing_tokens_are_configurable(tmp_path):
  path = tmp_path / 't.csv'
  path.write_text('a,b\n1,-\n-,2\n3,NA\n')
  columns, _ = scaffold.read_columns([str(path)], missing_values=('-',))
  assert columns['a'].is_number and columns['a'].empty == 1
  assert not columns['b'].is_number and set(columns['b'].values) == {'-', '2', 'NA'}


def test_falling_integers_name_rows(tmp_path):
  path = tmp_path / 't.csv'
  path.write_text('n,x,y\n' + ''.join(f'{100 - i},{i % 4},{i % 2}\n' for i in range(40)))
  columns, rows = scaffold.read_columns([str(path)])
  _, left_out, _ = scaffold.feature_kinds(columns, rows, 'y')
  assert left_out == {'n': 'names rows: an integer falling with every row (40 rows)'}


def test_init_refuses_a_column_name_transform_cannot_take(tmp_path, capfd):
  table = write_table(tmp_path / 'data' / 't.csv', 'binary', 50, names={'city': '<b>city</b>'})
  code = cli.main(
    ['init', str(tmp_path / 'p'), '--data', str(table), '--label', 'churned', '--task', 'binary']
  )
  err = capfd.readouterr().err
  assert code == 2 and err.count('\n') == 1
  assert f"{table}: column '<b>city</b>': TensorFlow refuses it" in err
  assert not (tmp_path / 'p').exists()


@pytest.mark.parametrize('task', ['binary', 'multiclass', 'regression'])
def test_the_generated_package_is_linted_as_this_project_is(tmp_path, task):
  """The templates are held to the project's own ruff rules and format, and the
  modules shared with the bundled example module are its source, renamed."""
  import subprocess
  import sys

  from tests.conftest import PROJECT_ROOT

  table = write_table(tmp_path / 'table.csv', task, 200)
  columns, rows = scaffold.read_columns([str(table)])
  features, _, decisions = scaffold.feature_kinds(columns, rows, LABELS[task])
  package = scaffold._write_package(tmp_path / 'my_model', 'my_model', table.name)
  (package / 'features.py').write_text(scaffold._features_py(features, decisions, table.name, rows))
  config = ['--config', str(PROJECT_ROOT / 'pyproject.toml')]
  for command in (['check', *config, str(package)], ['format', '--check', *config, str(package)]):
    result = subprocess.run(
      [sys.executable, '-m', 'ruff', *command], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
  for name in scaffold.SHARED_FILES:
    example = (PROJECT_ROOT / 'trainer_module' / name).read_text()
    assert (package / name).read_text() == example.replace('trainer_module', 'my_model')
