"""`python -m pipeline init`: a complete, runnable starting project fitted to a CSV table.

Writes into a new folder: `pipeline.yaml` (the config), `schema.pbtxt` (the
curated schema TFDV infers, the label kept out of serving) and a model
package (`preprocessing_fn`, `trainer_fn`, a custom `model_fn`, the input
functions and receivers) whose features are one mapping generated from the
data. `python -m pipeline run --config DIR/pipeline.yaml` then runs it.
"""

import collections
import csv
import dataclasses
import importlib.util
import keyword
import math
import os
import pathlib
import re
import shutil
import tempfile

import yaml

from components.column_names import check_names
from components.contract import MISSING_VALUES
from components.csv_check import check_csv_files
from components.metrics import gate_metrics

CONFIG_FILE = 'pipeline.yaml'
SCHEMA_FILE = 'schema.pbtxt'
TEMPLATES = pathlib.Path(__file__).resolve().parent / 'templates'
MODULE_FILES = ('__init__.py', 'preprocessing.py', 'model.py', 'canned.py', 'trainer.py')
# Modules a project shares word for word with the bundled example module, so
# a fix is made once: copied from its source (read, not imported), with the
# package's name put in.
EXAMPLE_MODULE = 'trainer_module'
SHARED_FILES = ('inputs.py',)
# What `init --model` offers: our custom model_fn, or one of TF's canned Estimators.
MODELS = ('custom', 'linear', 'dnn', 'wide_deep')
# An integer column is a code (categorical) when it has at most this many
# distinct values, each seen in this many rows on average; otherwise it is a
# number (a count, horsepower), which serving can extend beyond training.
MAX_INT_CATEGORIES = 20
MIN_ROWS_PER_CODE = 5
# A string or integer column with (almost) one value per row names rows
# (an id, free text): it is left out of the features.
ID_SHARE = 0.9
MAX_VOCABULARY = 1000
# How the first model is trained: about this many passes over the data,
# within these bounds of steps.
EPOCHS, MIN_STEPS, MAX_STEPS = 40, 500, 20_000
# Small batches learn more per pass; a large table gets larger ones, so it
# gets as many passes in as many steps.
BATCH_SIZE, LARGE_BATCH_SIZE, LARGE_TABLE = 32, 128, 10_000
# A DNN over a few hundred rows learns them by heart: on smaller tables its
# weights are held smaller and more of its units dropped in training
# (rows below, hparams), the first that applies.
REGULARIZATION = (
  (1_000, {'l2': 0.01, 'dropout': 0.3}),
  (LARGE_TABLE, {'l2': 0.001, 'dropout': 0.1}),
)


@dataclasses.dataclass
class Column:
  """What a pass over the CSV learnt about one column."""

  name: str
  values: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  empty: int = 0
  # Cells holding a missing-value token: missing if the column is numeric, values if text.
  tokens: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  numbers: list = dataclasses.field(default_factory=list)
  is_int: bool = True
  is_number: bool = True
  # Every number larger (smaller) than the one before, row after row (a row number).
  increasing: bool = True
  decreasing: bool = True

  def add(self, cell: str, missing: frozenset = frozenset()):
    if cell == '':
      self.empty += 1
      return
    if cell in missing:
      self.tokens[cell] += 1
      return
    # Every value, however many: a column of ids must be seen to be one.
    self.values[cell] += 1
    if self.is_number:
      try:
        number = float(cell)
      except ValueError:
        self.is_number = self.is_int = False
        return
      if not math.isfinite(number):
        self.is_number = self.is_int = False
        return
      if self.numbers:
        self.increasing = self.increasing and number > self.numbers[-1]
        self.decreasing = self.decreasing and number < self.numbers[-1]
      self.numbers.append(number)
      self.is_int = self.is_int and re.fullmatch(r'[-+]?\d+', cell.strip()) is not None

  def settle(self):
    """Once every cell is added: the tokens are missing numbers, or text values."""
    if self.is_number and self.values:
      self.empty += sum(self.tokens.values())
    else:
      self.values.update(self.tokens)
      self.is_number = self.is_int = self.increasing = self.decreasing = False
    self.tokens.clear()


def package_name(directory: pathlib.Path) -> str:
  """The model package's name: the folder's name as an identifier, plus `_model`."""
  slug = re.sub(r'[^a-z0-9_]+', '_', directory.resolve().name.lower()).strip('_') or 'project'
  if slug[0].isdigit() or keyword.iskeyword(slug):
    slug = 'p_' + slug
  return f'{slug}_model'


def _pipeline_name(directory: pathlib.Path) -> str:
  name = re.sub(r'[^a-z0-9]+', '-', directory.resolve().name.lower()).strip('-') or 'project'
  return name[:63].rstrip('-') if name[0].isalnum() else ('p-' + name)[:63]


def read_columns(
  files: list[str], missing_values: tuple[str, ...] = MISSING_VALUES
) -> tuple[dict[str, Column], int]:
  """Every column of the CSV `files` (one header), and the number of rows.

  One exact pass in Python rather than TFDV's statistics, which decide the
  schema: TFDV counts distinct values of text only, and sees neither whether
  an integer column rises row after row nor whether its values recur, which
  is what tells an id or a code from a number.
  """
  missing = frozenset(missing_values)
  columns, rows = None, 0
  for path in files:
    with open(path, newline='', encoding='utf-8-sig') as f:
      reader = csv.reader(f)
      header = next(reader)
      if columns is None:
        columns = {name: Column(name) for name in header}
      for row in reader:
        if not row:
          continue
        rows += 1
        for name, cell in zip(header, row, strict=False):  # a short row leaves cells out
          columns[name].add(cell.strip(), missing)
  for column in columns.values():
    column.settle()
  return columns, rows


def feature_kinds(columns: dict[str, Column], rows: int, label: str) -> tuple[dict, dict, dict]:
  """(features, left out, decisions): each feature's encoding, why other columns
  are not features, and for every column but the label what was decided and why."""
  features, left_out, decisions = {}, {}, {}
  for name, column in columns.items():
    if name == label:
      continue
    distinct = len(column.values)
    present = rows - column.empty
    missing = f', missing in {column.empty} of {rows} rows' if column.empty else ''
    if present == 0:
      left_out[name] = 'always empty'
    elif distinct == 1:
      left_out[name] = 'a single value'
    elif (
      column.is_int
      and (column.increasing or column.decreasing)
      and distinct == present
      and present >= 20
    ):
      way = 'rising' if column.increasing else 'falling'
      left_out[name] = f'names rows: an integer {way} with every row ({present} rows)'
    elif (
      column.is_int and distinct <= MAX_INT_CATEGORIES and present >= MIN_ROWS_PER_CODE * distinct
    ):
      features[name] = ('CATEGORICAL', distinct)
      decisions[name] = (
        f'categorical: an integer code, {distinct} values, about {present // distinct} rows each'
      )
    elif not column.is_number and distinct >= ID_SHARE * present and present >= 20:
      left_out[name] = f'names rows: {distinct} distinct values in {present} rows'
    elif column.is_int and distinct == present and present >= 20:
      left_out[name] = f'names rows: an integer with a distinct value in each of {present} rows'
    elif column.is_number:
      kind = 'an integer' if column.is_int else 'a number'
      features[name] = ('NUMERIC', 0)
      decisions[name] = f'numeric: {kind}, {distinct} distinct values{missing}'
    else:
      size = min(distinct, MAX_VOCABULARY)
      features[name] = ('CATEGORICAL', size)
      kept = f', the {size} most frequent kept' if size < distinct else ''
      decisions[name] = f'categorical: text, {distinct} values{kept}{missing}'
    if name in left_out:
      decisions[name] = f'left out: {left_out[name]}'
  if not features:
    raise ValueError('no column besides the label can be a feature')
  return features, left_out, decisions


def task_config(task: str, column: Column, rows: int) -> tuple[dict, dict, dict]:
  """(task section, evaluator gate, extra hparams) fitted to the label column."""
  label = column.name
  if column.empty:
    raise ValueError(
      f'the label column {label!r} is empty in {column.empty} of {rows} rows; '
      'fill or remove those rows'
    )
  values = column.values
  metric = gate_metrics(task)[0]
  if task == 'regression':
    if not column.is_number:
      raise ValueError(
        f'the label column {label!r} is not numeric, so it cannot be a '
        'regression target; did you mean --task binary or multiclass?'
      )
    n = len(column.numbers)
    mean = sum(column.numbers) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in column.numbers) / n) or 1.0
    # The RMSE of always predicting the mean: a model must beat it.
    return (
      {'type': task, 'label': label},
      {'metric': metric, 'threshold': _round_sig(std)},
      {'label_mean': _round_sig(mean), 'label_std': _round_sig(std)},
    )
  if len(values) < 2:
    raise ValueError(f'the label column {label!r} has a single value; nothing to learn')
  if column.is_number and not column.is_int:
    raise ValueError(
      f'the label column {label!r} holds fractional numbers, not classes; '
      'did you mean --task regression?'
    )
  if len(values) > 2 and len(values) >= ID_SHARE * rows:
    raise ValueError(
      f'the label column {label!r} has {len(values)} values in {rows} rows, '
      'about one class per row; did you mean --task regression?'
    )
  ids = column.is_int and all(0 <= int(v) < len(values) for v in values)
  if task == 'binary':
    if len(values) != 2:
      raise ValueError(
        f'the label column {label!r} has {len(values)} values, a binary label '
        'has 2; did you mean --task multiclass?'
      )
    section = {'type': task, 'label': label}
    if not (ids and set(values) <= {'0', '1'}):
      section['classes'] = sorted(values)  # the second is the positive class
    return section, {'metric': metric, 'threshold': 0.6}, {}
  if len(values) > MAX_VOCABULARY:
    raise ValueError(
      f'the label column {label!r} has {len(values)} values; too many classes '
      'for a multi-class task (did you mean --task regression?)'
    )
  if ids and set(values) == {str(i) for i in range(len(values))}:
    section = {'type': task, 'label': label, 'num_classes': len(values)}
  else:
    section = {'type': task, 'label': label, 'classes': sorted(values)}
  # The accuracy of always predicting the most frequent class: a model must beat it.
  majority = max(values.values()) / rows
  return section, {'metric': metric, 'threshold': round(majority, 3)}, {}


def _round_sig(x: float, digits: int = 4) -> float:
  return float(f'{x:.{digits}g}')


def safe_text(text: str) -> str:
  """`text` fit for generated Python's docstrings and comments: letters, digits
  and ` ._-` only (a file name or header from anywhere must never become code)."""
  return re.sub(r'[^\w .-]', '_', text)


def _features_py(features: dict, decisions: dict, data_name: str, rows: int) -> str:
  lines = [
    '"""The model\'s inputs: one mapping from raw column to how it is encoded.',
    '',
    f'Generated by `python -m pipeline init` from {safe_text(data_name)} ({rows} rows);',
    'edit freely: move a column between NUMERIC and CATEGORICAL, or delete it.',
    '"""',
    '',
    'import dataclasses',
    'import enum',
    'import re',
    'import zlib',
    '',
    '',
    'class Kind(enum.Enum):',
    "  NUMERIC = 'numeric'  # a number: z-score and a missing flag (an empty cell: 0, 1)",
    "  CATEGORICAL = 'categorical'  # text or an integer code: vocabulary id, embedded",
    '',
    '',
    '@dataclasses.dataclass(frozen=True)',
    'class Feature:',
    '  kind: Kind',
    '  vocab_size: int = 0  # CATEGORICAL: how many of the most frequent values get an id',
    '',
    '',
    'FEATURES = {',
  ]
  for name, (kind, size) in features.items():
    extra = f', vocab_size={size}' if kind == 'CATEGORICAL' else ''
    lines.append(f'  {name!r}: Feature(Kind.{kind}{extra}),')
  lines.append('}')
  # Names as Python literals (repr): a header cell can hold a line break.
  lines.append('# How init read each column:')
  lines += [f'#   {name!r}: {why}' for name, why in decisions.items()]
  lines += [
    '',
    '# Ids for values outside the vocabulary (rare, or new since training).',
    'OOV_BUCKETS = 5',
    "# The transformed label's name (the raw label column is the config's task.label).",
    "LABEL_KEY = 'label_xf'",
    '',
    '',
    'def transformed_name(key: str) -> str:',
    '  """A feature\'s name after Transform; raw names stay free for TFMA slicing.',
    '',
    '  TF names variables after it (canned Estimators), so a column name holding',
    '  anything else than letters, digits and `_.-` is spelled safely, with a',
    '  checksum keeping two such names apart.',
    '  """',
    "  if re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9_.-]*', key):",
    "    return key + '_xf'",
    "  safe = re.sub(r'[^A-Za-z0-9_.-]', '_', key)",
    "  return f'f_{safe}_{zlib.crc32(key.encode()):08x}_xf'",
    '',
    '',
    'def num_ids(feature: Feature) -> int:',
    '  """How many distinct ids a CATEGORICAL feature takes."""',
    '  return feature.vocab_size + OOV_BUCKETS',
    '',
  ]
  return '\n'.join(lines)


def _config_yaml(
  directory: pathlib.Path,
  data_root: str,
  task_section: dict,
  gate: dict,
  hparams: dict,
  slice_features: list,
  rows: int,
  package: str,
  missing_values: tuple[str, ...],
) -> str:
  batch_size = BATCH_SIZE if rows < LARGE_TABLE else LARGE_BATCH_SIZE
  # The Trainer sees two thirds of the rows (the rest is the eval split).
  train_steps = max(MIN_STEPS, min(MAX_STEPS, EPOCHS * (2 * rows // 3) // batch_size))
  config = {
    'pipeline_name': _pipeline_name(directory),
    'module': package,
    'code_dir': '.',
    'data_root': data_root,
    'schema_file': SCHEMA_FILE,
    'output_root': 'outputs',
    'serving_dir': '',
    'missing_values': list(missing_values),
    'task': task_section,
    'trainer': {
      'train_steps': train_steps,
      # One pass over the eval split (a third of the rows) is enough.
      'eval_steps': rows // batch_size + 1,
      'warm_start': True,
      'hparams': {
        'batch_size': batch_size,
        'learning_rate': 0.003,
        'hidden_units': [64, 32],
        **next((hp for below, hp in REGULARIZATION if rows < below), {}),
        'checkpoint_secs': 60,
        **hparams,
      },
    },
    'evaluator': {**gate, 'max_change': 0.0, 'slice_features': slice_features},
  }
  header = (
    f'# Made by `python -m pipeline init`. Relative paths are relative to this file.\n'
    f'# Run: python -m pipeline run --config {directory / CONFIG_FILE}\n'
    "# Every key is in the pipeline's README; the model package's contract in its\n"
    '# docs/your-own-table.md.\n'
    f'# evaluator.threshold is what a trivial model scores ({_trivial(task_section["type"])}):\n'
    '# raise it to the bar your model must clear.\n'
  )
  return header + yaml.safe_dump(config, sort_keys=False, default_flow_style=None)


def _trivial(task: str) -> str:
  return {
    'binary': 'AUC of a coin is 0.5',
    'multiclass': 'always the most frequent class',
    'regression': 'RMSE of always the mean label',
  }[task]


def _infer_schema(data_root: str, label: str, task_section: dict, missing_values):
  from tensorflow_metadata.proto.v0 import schema_pb2

  from pipeline.scaffold import schema as schema_lib

  stats = schema_lib.statistics(os.path.join(data_root, '*'), missing_values)
  schema = schema_lib.infer(stats, label)
  count = task_section.get('num_classes') or (
    2 if task_section['type'] == 'binary' and 'classes' not in task_section else 0
  )
  for feature in schema.feature:
    if feature.name == label:
      # Every training row needs a label; ids outside the task's are anomalies.
      feature.presence.min_fraction = 1.0
      if count and feature.type == schema_pb2.INT:
        feature.int_domain.min, feature.int_domain.max = 0, count - 1
  return schema


def _write_package(module_dir: pathlib.Path, package: str, data_name: str) -> pathlib.Path:
  """The model package's modules, but `features.py`; returns its folder."""
  module_dir.mkdir()
  for name in MODULE_FILES:
    text = (TEMPLATES / f'{name}.tmpl').read_text()
    text = text.replace('{package}', package).replace('{data_name}', safe_text(data_name))
    (module_dir / name).write_text(text)
  for name in SHARED_FILES:
    (module_dir / name).write_text(_shared_source(name).replace(EXAMPLE_MODULE, package))
  return module_dir


def _shared_source(name: str) -> str:
  """The bundled example module's file `name`, found without importing it."""
  spec = importlib.util.find_spec(EXAMPLE_MODULE)
  return (pathlib.Path(spec.origin).parent / name).read_text()


def init(
  directory: pathlib.Path,
  data: pathlib.Path,
  label: str,
  task: str,
  force: bool = False,
  decided: dict | None = None,
  missing_values: tuple[str, ...] = MISSING_VALUES,
  model: str = 'custom',
) -> pathlib.Path:
  """Writes the starting project for the CSV table at `data` into `directory`.

  `decided`, if given, receives each column's decision (as `features.py`'s comment
  says it); `missing_values` are the cells read as a missing number; `model`
  one of MODELS, the Estimator the package builds.

  Raises:
    FileExistsError: `directory` exists and `force` is not set.
    ValueError, DataError: the data or label do not fit the task (the message says why).
  """
  if model not in MODELS:
    raise ValueError(f'--model {model!r}: expected one of {", ".join(MODELS)}')
  directory = directory.resolve()
  data = data.resolve()
  if directory.exists() and not force:
    raise FileExistsError(f'{directory} exists; pass --force to overwrite it')
  if not data.exists():
    raise FileNotFoundError(f'--data {data} does not exist')
  data_dir = data if data.is_dir() else data.parent
  files = check_csv_files(str(data_dir), '*' if data.is_dir() else data.name)
  columns, rows = read_columns(files, missing_values)
  check_names(columns, str(data))
  if label not in columns:
    raise ValueError(
      f'--label {label!r} is not a column of {data}; columns: {", ".join(map(repr, columns))}'
    )
  features, _, decisions = feature_kinds(columns, rows, label)
  if decided is not None:
    decided.update(decisions)
  task_section, gate, hparams = task_config(task, columns[label], rows)
  slices = [
    name for name, (kind, size) in features.items() if kind == 'CATEGORICAL' and size <= 10
  ][:1]
  package = package_name(directory)

  # Assembled in a temporary folder and moved into place, so a failure
  # (e.g. in schema inference) leaves no half-made project.
  parent = directory.parent
  parent.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(prefix=f'.{directory.name}-', dir=parent))
  try:
    if data.is_dir():
      data_root = os.path.relpath(data, directory)
    else:
      # The pipeline reads every file of a folder: this table gets one of its own.
      (staging / 'data').mkdir()
      (staging / 'data' / data.name).symlink_to(data)
      data_root = 'data'
    schema = _infer_schema(
      str(data_dir if data.is_dir() else staging / 'data'), label, task_section, missing_values
    )
    from pipeline.scaffold import schema as schema_lib

    schema_lib.write(schema, staging / SCHEMA_FILE)
    (staging / CONFIG_FILE).write_text(
      _config_yaml(
        directory,
        data_root,
        task_section,
        gate,
        {'estimator': model, **hparams},
        slices,
        rows,
        package,
        missing_values,
      )
    )
    module_dir = _write_package(staging / package, package, data.name)
    (module_dir / 'features.py').write_text(_features_py(features, decisions, data.name, rows))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private
    if directory.exists():
      shutil.rmtree(directory)
    os.rename(staging, directory)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return directory
