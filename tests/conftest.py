"""Shared fixtures: a tiny dataset transformed by our preprocessing_fn through tft_beam."""

import csv
import functools
import itertools
import json
import pathlib
import subprocess
import sys

import pytest

from components import contract
from pipeline.config import PROJECT_ROOT, load_config

DATA_CSV = PROJECT_ROOT / 'data' / 'taxi' / 'data.csv'
SCHEMA = PROJECT_ROOT / 'data' / 'schema' / 'schema.pbtxt'
TINY_ROWS = 400
# The slowest files, slowest first (measured in `make test`): pytest-xdist
# hands files to workers in collection order (`--no-loadscope-reorder`; by
# default it orders them by their number of tests), and a long file handed
# out last runs alone.
SLOWEST_FILES = (
  'test_retrain_e2e.py',
  'test_e2e.py',
  'test_cluster_e2e.py',
  'test_faults_e2e.py',
  'test_init_e2e.py',
  'test_model.py',
  'test_bench.py',
  'test_batch_metrics.py',
  'test_beam_e2e.py',
  'test_binary_metrics.py',
  'test_smoke_check.py',
)


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file


def pytest_xdist_make_scheduler(config, log):
  """`--dist loadfile`, handing a worker its next file only once it runs the
  last test of its current one (see `_LastTestAhead`)."""
  if config.getoption('dist') != 'loadfile':
    return None
  from xdist.scheduler import LoadFileScheduling

  class _LastTestAhead(LoadFileScheduling):
    """xdist queues a worker's next file when two of its tests are left: a
    worker then took a long file behind two long tests of its own while
    another worker was about to run dry. A worker runs a test only once it
    knows the next one, so one left is the least that keeps it busy."""

    def _reschedule(self, node):
      if node.shutting_down:
        return
      if not self.workqueue:
        node.shutdown()
      elif self._pending_of(self.assigned_work[node]) <= 1:
        self._assign_work_unit(node)

  return _LastTestAhead(config, log)


def taxi_module_args(**hparams) -> dict:
  """The custom_config trainer_module gets from the shipped config."""
  config = load_config()
  return contract.dump(
    contract.ModuleArgs(task=config.task, hparams={**config.trainer.hparams, **hparams})
  )


def sample_workspace(root: pathlib.Path, rows: int) -> pathlib.Path:
  """A directory with `data/data.csv`: the first `rows` rows of the bundled data."""
  (root / 'data').mkdir()
  lines = DATA_CSV.read_text().splitlines(keepends=True)[: rows + 1]
  (root / 'data' / 'data.csv').write_text(''.join(lines))
  return root


def pipeline_command(root, *overrides, data_root=None, runner='local', flags=()) -> list[str]:
  """`python -m pipeline run` writing under `root/out`, reading `root/data` by default."""
  return [
    sys.executable,
    '-m',
    'pipeline',
    'run',
    '--runner',
    runner,
    *flags,
    '--set',
    f'output_root={root / "out"}',
    '--set',
    f'data_root={data_root or root / "data"}',
    *[arg for o in overrides for arg in ('--set', o)],
  ]


def latest_summary(root):
  summary_file = root / 'out' / 'latest_summary.json'
  return json.loads(summary_file.read_text()) if summary_file.exists() else None


def run_pipeline(root, *overrides, data_root=None, runner='local', flags=()):
  """Runs the pipeline CLI to completion; returns (process, summary of this run or None)."""
  summary_file = root / 'out' / 'latest_summary.json'
  if summary_file.exists():
    summary_file.unlink()
  process = subprocess.run(
    pipeline_command(root, *overrides, data_root=data_root, runner=runner, flags=flags),
    capture_output=True,
    text=True,
    timeout=900,
    cwd=root,
  )
  return process, latest_summary(root)


def read_rows(n: int) -> list[dict]:
  with open(DATA_CSV, newline='') as f:
    return list(itertools.islice(csv.DictReader(f), n))


def to_instance(row: dict, feature_spec) -> dict:
  """A CSV row as a tft instance dict, typed by the schema; '' is missing."""
  import tensorflow as tf

  instance = {}
  for key, spec in feature_spec.items():
    cell = row.get(key, '')
    if cell == '':
      instance[key] = []
    elif spec.dtype == tf.string:
      instance[key] = [cell.encode()]
    elif spec.dtype == tf.int64:
      instance[key] = [int(float(cell))]
    else:
      instance[key] = [float(cell)]
  return instance


@pytest.fixture(scope='session')
def raw_feature_spec():
  import tensorflow_data_validation as tfdv
  from tensorflow_transform.tf_metadata import schema_utils

  return schema_utils.schema_as_feature_spec(tfdv.load_schema_text(str(SCHEMA))).feature_spec


# One hand-made row with every optional column empty, to pin missing-value
# handling; its trip_miles, longer than any real trip, identifies it.
MISSING_ROW = {
  'fare': '10.0',
  'tips': '3.0',
  'trip_start_month': '5',
  'trip_start_hour': '7',
  'trip_start_day': '2',
  'trip_start_timestamp': '1400269500',
  'trip_miles': '5000',
  'payment_type': 'Credit Card',
  'trip_seconds': '300',
}


@pytest.fixture(scope='session')
def transformed(tmp_path_factory, raw_feature_spec):
  """Runs preprocessing_fn with tft_beam on TINY_ROWS rows + MISSING_ROW.

  Returns (transform output dir, raw TFRecord pattern, transformed rows, raw rows).
  """
  import apache_beam as beam
  import tensorflow as tf
  import tensorflow_transform as tft
  import tensorflow_transform.beam as tft_beam
  from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

  from trainer_module import preprocessing_fn

  preprocessing = functools.partial(preprocessing_fn, custom_config=taxi_module_args())
  root = tmp_path_factory.mktemp('transform')
  rows = [*read_rows(TINY_ROWS), MISSING_ROW]
  instances = [to_instance(r, raw_feature_spec) for r in rows]
  metadata = dataset_metadata.DatasetMetadata(
    schema_utils.schema_from_feature_spec(raw_feature_spec)
  )
  # TF1 graph mode, as the pipeline's Transform runs it.
  with beam.Pipeline() as p, tft_beam.Context(temp_dir=str(root / 'tmp'), force_tf_compat_v1=True):
    data = p | beam.Create(instances, reshuffle=False)
    (out, out_metadata), transform_fn = (data, metadata) | tft_beam.AnalyzeAndTransformDataset(
      preprocessing, output_record_batches=False
    )
    _ = transform_fn | tft_beam.WriteTransformFn(str(root / 'transform_output'))
    # The raw schema, which the serving and eval receivers parse with (as TFX writes it).
    _ = metadata | 'WriteRawMetadata' >> tft_beam.WriteMetadata(
      str(root / 'transform_output' / tft.TFTransformOutput.RAW_METADATA_DIR), p
    )
    # The raw rows as ExampleGen writes them, which the Trainer's input_fn
    # reads, and what Transform makes of them.
    for name, pcoll, schema in (
      ('raw', data, metadata.schema),
      ('transformed', out, out_metadata.schema),
    ):
      _ = (
        pcoll
        | f'Encode[{name}]' >> beam.Map(tft.coders.ExampleProtoCoder(schema).encode)
        | f'Write[{name}]'
        >> beam.io.WriteToTFRecord(
          str(root / name / 'part'),
          file_name_suffix='.gz',
          compression_type=beam.io.filesystem.CompressionTypes.GZIP,
        )
      )
  dataset = tf.data.TFRecordDataset(
    tf.io.gfile.glob(str(root / 'transformed' / 'part*')), compression_type='GZIP'
  )
  output = tft.TFTransformOutput(str(root / 'transform_output'))
  spec = output.transformed_feature_spec()
  transformed_rows = [
    {k: v.numpy() for k, v in tf.io.parse_single_example(r, spec).items()} for r in dataset
  ]
  return str(root / 'transform_output'), str(root / 'raw' / 'part*'), transformed_rows, rows


def serialize(row: dict, feature_spec, drop=('tips',)) -> bytes:
  """A CSV row as a raw serialized tf.Example, as a serving client would send it."""
  import tensorflow as tf

  feature = {}
  for key, values in to_instance(row, feature_spec).items():
    if key in drop or not values:
      continue
    if isinstance(values[0], bytes):
      feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    elif isinstance(values[0], int):
      feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    else:
      feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def rendered_images(page: pathlib.Path) -> tuple[int, int]:
  """(images on `page`, images the browser decoded), from Debian's chromium, headless."""
  import re
  import shutil

  chromium = shutil.which('chromium')
  assert chromium, "Debian's chromium is missing: `make test` installs it"
  result = subprocess.run(
    [
      chromium,
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--virtual-time-budget=10000',
      '--dump-dom',
      page.as_uri(),
    ],
    capture_output=True,
    text=True,
    timeout=120,
  )
  attributes = dict(re.findall(r'data-(images(?:-decoded)?)="(\d+)"', result.stdout))
  assert attributes, result.stdout[:2000] + result.stderr[-2000:]
  return int(attributes['images']), int(attributes['images-decoded'])


@pytest.fixture(scope='session')
def kfp2_python():
  """The kfp 2.x environment's interpreter (build/kfp2, made by `make kfp2-env`):
  kfp 2.x, kfp-kubernetes and kubeflow-training cannot share TFX's pins."""
  python = PROJECT_ROOT / 'build' / 'kfp2' / 'bin' / 'python'
  if not python.exists():
    subprocess.run(['make', '-s', '-C', str(PROJECT_ROOT), 'kfp2-env'], check=True)
  return python


# The e2e files' runs: small, so a fault or a bad input is seen in seconds.
SMALL_RUN = ('trainer.train_steps=300', 'trainer.eval_steps=20', 'evaluator.threshold=0.75')


def run_cli(root, *overrides, data_root=None):
  """Runs `python -m pipeline run` on the sample; returns (process, summary)."""
  return run_pipeline(root, *SMALL_RUN, *overrides, data_root=data_root)


def start_cli(root, *overrides, data_root=None):
  """Starts `python -m pipeline run` on `data_root` (default: the sample) without waiting."""
  return subprocess.Popen(
    pipeline_command(root, *SMALL_RUN, *overrides, data_root=data_root),
    cwd=root,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def states(summary):
  """Each component's state in a run summary."""
  return {c['name']: c['state'] for c in summary['components']}


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
  """A test module's own output root over a 3,000-row sample (a module may
  define its own); its tests share it and run in file order."""
  return sample_workspace(tmp_path_factory.mktemp('e2e'), 3000)


@pytest.fixture(scope='module')
def first_run(workspace):
  """The module's first run on its workspace, which pushes a model: (process, summary)."""
  return run_cli(workspace)
