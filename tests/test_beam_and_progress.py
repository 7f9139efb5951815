"""The Beam options each `beam.*` setting gives, and progress tracking of a local run."""

import logging

import pytest

from pipeline.config import load_config
from pipeline.definition import beam
from pipeline.definition import progress as progress_module
from pipeline.definition.progress import ComponentProgress, TrainingProgress
from pipeline.record import CACHED, EXECUTED, FAILED

IMAGE = 'reg.example/taxi:3'


def config(*overrides):
  return load_config(overrides=[f'kubeflow.image={IMAGE}', *overrides])


def test_in_process_has_no_beam_options_so_tfx_builds_no_sdist():
  assert beam.beam_args(config('beam.runner=in_process')) == []


def test_multi_process_direct_runner():
  assert beam.beam_args(config('beam.runner=multi_process', 'beam.workers=3')) == [
    '--runner=DirectRunner',
    '--direct_running_mode=multi_processing',
    '--direct_num_workers=3',
    f'--sdk_container_image={IMAGE}',
  ]


def test_portable_runner_on_the_embedded_job_server():
  assert beam.beam_args(config('beam.runner=portable')) == [
    '--runner=PortableRunner',
    '--job_endpoint=embed',
    '--environment_type=LOOPBACK',
    f'--sdk_container_image={IMAGE}',
  ]
  assert beam.beam_args(
    config('beam.runner=portable', 'beam.environment=process', 'beam.job_endpoint=jobs:8099'),
    'localhost:5000',
  ) == [
    '--runner=PortableRunner',
    '--job_endpoint=jobs:8099',
    '--environment_type=EXTERNAL',
    '--environment_config=localhost:5000',
    f'--sdk_container_image={IMAGE}',
  ]


def test_custom_options_pass_through_and_keep_a_given_dependency_option():
  flink = ['--runner=FlinkRunner', '--flink_master=flink:8081', '--environment_type=DOCKER']
  assert beam.beam_args(config('beam.runner=custom', f'beam.args={flink}')) == [
    *flink,
    f'--sdk_container_image={IMAGE}',
  ]
  dataflow = [
    '--runner=DataflowRunner',
    '--project=p',
    '--region=r',
    '--temp_location=gs://b/tmp',
    '--sdk_container_image=gcr.io/p/taxi:1',
  ]
  assert beam.beam_args(config('beam.runner=custom', f'beam.args={dataflow}')) == dataflow


def test_auto_picks_the_runner_by_input_size(tmp_path):
  (tmp_path / 'data.csv').write_bytes(b'x' * 2**20)
  small = config('beam.runner=auto', f'data_root={tmp_path}', 'beam.auto_threshold_mb=2')
  large = config('beam.runner=auto', f'data_root={tmp_path}', 'beam.auto_threshold_mb=0')
  assert beam.resolved_beam_runner(small) == 'in_process'
  assert beam.resolved_beam_runner(large) == 'multi_process'


def test_the_components_running_side_by_side_share_the_cpus_workers(monkeypatch):
  from pipeline.definition.pipeline import create_pipeline

  monkeypatch.setattr(beam.os, 'cpu_count', lambda: 4)
  multi = config('beam.runner=multi_process')
  pipeline = create_pipeline(multi)
  beam.add_beam_args(
    pipeline, beam.beam_args(multi), side_by_side=beam.beam_args(multi, side_by_side=True)
  )
  workers = {
    c.id: [a for a in c.executor_spec.beam_pipeline_args if a.startswith('--direct_num_workers')]
    for c in pipeline.components
    if hasattr(c.executor_spec, 'beam_pipeline_args')
  }
  assert workers == {
    'CsvExampleGen': ['--direct_num_workers=4'],
    'StatisticsGen': ['--direct_num_workers=2'],
    'Transform': ['--direct_num_workers=2'],
  }
  # Workers the user set are each component's; other runners are not split.
  assert '--direct_num_workers=3' in beam.beam_args(
    config('beam.runner=multi_process', 'beam.workers=3'), side_by_side=True
  )
  monkeypatch.setattr(beam.os, 'cpu_count', lambda: 1)
  assert '--direct_num_workers=1' in beam.beam_args(multi, side_by_side=True)
  portable = config('beam.runner=portable')
  assert beam.beam_args(portable, side_by_side=True) == beam.beam_args(portable)


def test_auto_keeps_example_gen_in_process_and_gives_the_others_the_workers(tmp_path, monkeypatch):
  from components import csv_ingest
  from pipeline.definition.pipeline import create_pipeline

  auto = config('beam.runner=auto')
  pipeline = create_pipeline(auto)
  options = ['--runner=DirectRunner', '--direct_running_mode=multi_processing']
  beam.add_beam_args(pipeline, options, beam.in_process_components(auto))
  args = {
    c.id: list(c.executor_spec.beam_pipeline_args)
    for c in pipeline.components
    if hasattr(c.executor_spec, 'beam_pipeline_args')
  }
  assert args['CsvExampleGen'] == []
  assert args['Transform'] == args['StatisticsGen'] == options
  # The Evaluator computes over whole arrays, without Beam.
  assert 'Evaluator' not in args
  # A runner chosen by name is every component's, ExampleGen's too.
  assert beam.in_process_components(config('beam.runner=multi_process')) == ()
  # Input of two ranges or more has work for two ExampleGen workers.
  monkeypatch.setattr(csv_ingest, 'RANGE_BYTES', 2**19)
  (tmp_path / 'data.csv').write_bytes(b'x' * (2**20 - 1))
  assert beam.in_process_components(config('beam.runner=auto', f'data_root={tmp_path}')) == (
    'CsvExampleGen',
  )
  (tmp_path / 'more.csv').write_bytes(b'x')
  assert beam.in_process_components(config('beam.runner=auto', f'data_root={tmp_path}')) == ()


@pytest.mark.parametrize(
  'running, finished',
  [
    ('Component %s is running.', 'Component %s is finished.'),  # ConcurrentDagRunner
    ('node %s is running.', 'node %s is finished.'),  # BeamDagRunner
  ],
)
def test_progress_follows_both_runners(running, finished):
  seen = []
  progress = ComponentProgress(lambda *a: seen.append(a[:2]))

  def log(msg, *args):
    return progress.emit(logging.LogRecord('absl', logging.INFO, '', 0, msg, args, None))

  log(running, 'Transform')
  log(finished, 'Transform')
  log(running, 'Trainer')
  log('A cached execution %d is used.', 7)
  log(finished, 'Trainer')
  assert seen == [('Transform', EXECUTED), ('Trainer', CACHED)]


def test_progress_times_components_running_side_by_side_in_their_threads():
  seen = []
  progress = ComponentProgress(lambda *a: seen.append(a[:2]))

  def log(thread, msg, *args):
    record = logging.LogRecord('absl', logging.INFO, '', 0, msg, args, None)
    record.thread = thread
    progress.emit(record)

  log(1, 'Component %s is running.', 'StatisticsGen')
  log(2, 'Component %s is running.', 'Transform')
  log(2, 'A cached execution %d is used.', 7)
  log(1, 'Component %s failed.', 'StatisticsGen')
  log(2, 'Component %s is finished.', 'Transform')
  log(1, 'Component %s is running.', 'ExampleValidator')
  assert seen == [('StatisticsGen', FAILED), ('Transform', CACHED)]
  progress.fail()  # the run stopped under the one still running
  assert seen[-1] == ('ExampleValidator', FAILED)
  assert set(progress.timings) == {'StatisticsGen', 'Transform', 'ExampleValidator'}


def test_the_smoke_checks_process_is_prewarmed_as_the_trainer_starts(monkeypatch):
  from components import smoke_check
  from pipeline.definition import runners
  from pipeline.definition.progress import ComponentStarts

  prewarmed = []
  monkeypatch.setattr(smoke_check, 'prewarm', lambda: prewarmed.append(True))
  starts = ComponentStarts(runners._prewarm_at_training)
  for name in ('Transform', 'Trainer', 'Evaluator'):
    starts.emit(
      logging.LogRecord('absl', logging.INFO, '', 0, 'node %s is running.', (name,), None)
    )
    starts.emit(
      logging.LogRecord('absl', logging.INFO, '', 0, 'A cached execution %d is used.', (1,), None)
    )
  assert prewarmed == [True]


def test_the_bundled_data_runs_in_process_by_default():
  # 1.9 MB of CSV, under beam.auto_threshold_mb: in-process measured 2x faster there.
  assert load_config().beam.runner == 'auto'
  assert beam.resolved_beam_runner(load_config()) == 'in_process'


def test_training_progress_reports_step_loss_pace_and_eta_at_a_steady_pace(monkeypatch):
  import logging

  clock = [100.0]
  monkeypatch.setattr(progress_module.time, 'monotonic', lambda: clock[0])
  lines = []
  progress = TrainingProgress(2000, lines.append, every_s=5)
  logger = logging.getLogger('test.tensorflow')
  logger.setLevel(logging.INFO)
  logger.addHandler(progress)
  try:
    logger.info('loss = %s, step = %s', 0.6931, 0)
    logger.info('global_step/sec: %g', 80.0)
    clock[0] += 1
    logger.info('loss = %s, step = %s (1.2 sec)', 0.5, 100)  # within 5 s: not reported
    clock[0] += 5
    logger.info('global_step/sec: %g', 100.0)
    logger.info('chief: INFO:tensorflow:loss = 0.25, step = 1000 (1.0 sec)')
  finally:
    logger.removeHandler(progress)
  assert lines == [
    'step 0/2000 (0%)  loss 0.6931',
    'step 1000/2000 (50%)  loss 0.2500  100.0 steps/s  ETA 10 s',
  ]


def test_log_follower_hands_on_new_complete_progress_lines(tmp_path):
  from components.local_cluster import LogFollower

  log = tmp_path / 'chief-0.log'
  seen = []
  follower = LogFollower(log)
  follower.poll(seen.append)  # no file yet
  log.write_text('INFO:tensorflow:loss = 0.5, step = 1\nother\nINFO:tensorflow:global_step/sec: 9')
  follower.poll(seen.append)
  assert seen == ['INFO:tensorflow:loss = 0.5, step = 1']
  with open(log, 'a') as f:
    f.write('.5\nINFO:tensorflow:loss = 0.4, step = 100\n')
  follower.poll(seen.append)
  assert seen[1:] == [
    'INFO:tensorflow:global_step/sec: 9.5',
    'INFO:tensorflow:loss = 0.4, step = 100',
  ]
