"""The push destination: atomic, monotonically versioned, with a record for baselines."""

import concurrent.futures
import os
import pathlib
import subprocess
import sys
from unittest import mock

import pytest
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from components import serving


def _saved_model_pb(signature='serving_default') -> bytes:
  graph = meta_graph_pb2.MetaGraphDef()
  graph.signature_def[signature].method_name = 'tensorflow/serving/predict'
  return saved_model_pb2.SavedModel(meta_graphs=[graph]).SerializeToString()


def _model(tmp_path, name='m'):
  model = tmp_path / name
  (model / 'variables').mkdir(parents=True)
  (model / 'saved_model.pb').write_bytes(_saved_model_pb())
  (model / 'variables' / 'variables.index').write_bytes(b'idx')
  (model / 'variables' / 'variables.data-00000-of-00001').write_bytes(b'weights')
  eval_model = tmp_path / f'{name}_eval'
  eval_model.mkdir()
  (eval_model / 'saved_model.pb').write_bytes(_saved_model_pb('eval'))
  return str(model), str(eval_model)


def test_push_lays_out_a_tf_serving_version_with_record(tmp_path):
  model, eval_model = _model(tmp_path)
  pushed = serving.push(model, eval_model, str(tmp_path / 'serving'), {'architecture': 'x'})
  assert os.path.isfile(os.path.join(pushed.path, 'saved_model.pb'))
  assert os.path.isfile(os.path.join(pushed.path, 'variables', 'variables.index'))
  latest = serving.latest(str(tmp_path / 'serving'))
  assert latest.version == pushed.version
  assert latest.record['architecture'] == 'x'
  assert os.path.isfile(os.path.join(latest.baseline_model_uri, 'Format-TFMA', 'saved_model.pb'))
  # Nothing but the version (and the push lock) is left in the serving directory.
  assert [n for n in os.listdir(tmp_path / 'serving') if not n.startswith('.')] == [
    str(pushed.version)
  ]
  assert not [n for n in os.listdir(tmp_path / 'serving') if n.startswith('.incoming')]


def test_pushes_in_the_same_second_get_increasing_versions(tmp_path):
  model, eval_model = _model(tmp_path)
  with mock.patch('time.time', return_value=1_700_000_000.0):
    first = serving.push(model, eval_model, str(tmp_path / 's'), {})
    second = serving.push(model, eval_model, str(tmp_path / 's'), {})
  assert (first.version, second.version) == (1_700_000_000, 1_700_000_001)
  assert serving.versions(str(tmp_path / 's')) == [first.version, second.version]


def test_versions_increase_even_if_the_clock_goes_back(tmp_path):
  model, eval_model = _model(tmp_path)
  with mock.patch('time.time', return_value=2_000_000_000.0):
    first = serving.push(model, eval_model, str(tmp_path / 's'), {})
  with mock.patch('time.time', return_value=1_000_000_000.0):
    second = serving.push(model, eval_model, str(tmp_path / 's'), {})
  assert second.version > first.version


def test_concurrent_pushes_never_collide(tmp_path):
  model, eval_model = _model(tmp_path)
  with (
    mock.patch('time.time', return_value=1_700_000_000.0),
    concurrent.futures.ThreadPoolExecutor(4) as pool,
  ):
    results = list(
      pool.map(lambda i: serving.push(model, eval_model, str(tmp_path / 's'), {'i': i}), range(8))
    )
  assert len({r.version for r in results}) == 8
  assert len(serving.versions(str(tmp_path / 's'))) == 8


def test_a_failed_copy_leaves_no_version_and_no_debris(tmp_path):
  model, eval_model = _model(tmp_path)
  serving_dir = tmp_path / 's'
  with (
    mock.patch('tfx.utils.io_utils.copy_dir', side_effect=OSError('disk full')),
    pytest.raises(OSError, match='disk full'),
  ):
    serving.push(model, eval_model, str(serving_dir), {})
  assert serving.versions(str(serving_dir)) == []
  assert not [n for n in os.listdir(serving_dir) if n.startswith('.incoming')]


def test_incomplete_directories_are_not_served(tmp_path):
  (tmp_path / 's' / '123').mkdir(parents=True)  # no saved_model.pb
  (tmp_path / 's' / 'notes').mkdir()
  assert serving.versions(str(tmp_path / 's')) == [123]
  assert serving.latest(str(tmp_path / 's')) is None
  assert serving.damaged(str(tmp_path / 's')) == [
    (123, str(tmp_path / 's' / '123'), 'saved_model.pb is missing')
  ]


@pytest.mark.parametrize(
  'damage, problem',
  [
    (lambda v: os.remove(os.path.join(v, 'saved_model.pb')), 'saved_model.pb is missing'),
    (
      lambda v: pathlib.Path(v, 'saved_model.pb').write_bytes(b'\xff\xff garbage'),
      'does not parse',
    ),
    (lambda v: pathlib.Path(v, 'saved_model.pb').write_bytes(b'pb'), 'holds no graph'),
    (
      lambda v: pathlib.Path(v, 'saved_model.pb').write_bytes(_saved_model_pb('eval')),
      "no 'serving_default' signature",
    ),
  ],
)
def test_a_damaged_newest_version_is_passed_over_and_named(tmp_path, damage, problem):
  model, eval_model = _model(tmp_path)
  push_dir = str(tmp_path / 's')
  good = serving.push(model, eval_model, push_dir, {})
  bad = serving.push(model, eval_model, push_dir, {})
  damage(bad.path)
  assert serving.latest(push_dir).version == good.version
  ((version, path, found),) = serving.damaged(push_dir)
  assert (version, path) == (bad.version, bad.path) and problem in found
  # The next push still goes above every version, damaged or not.
  assert serving.push(model, eval_model, push_dir, {}).version > bad.version


@pytest.mark.parametrize(
  'damage, problem',
  [
    ('variables/variables.data-00000-of-00001', 'variables.data-00000-of-00001 is missing'),
    ('variables/variables.index', 'variables/variables.index is missing'),
  ],
)
@pytest.mark.parametrize('recorded', [True, False], ids=['pushed here', 'pushed by another tool'])
def test_a_version_missing_a_file_is_damaged_and_set_aside(tmp_path, damage, problem, recorded):
  """A version whose saved_model.pb parses but whose variables are gone would
  fail to load (and to warm-start from): it is damaged, moved aside (kept),
  and the next version goes above it."""
  model, eval_model = _model(tmp_path)
  push_dir = str(tmp_path / 's')
  good = serving.push(model, eval_model, push_dir, {})
  bad = serving.push(model, eval_model, push_dir, {})
  if not recorded:
    os.remove(os.path.join(bad.path, serving.PUSH_RECORD))
  os.remove(os.path.join(bad.path, damage))
  assert problem in serving.version_problem(bad.path)
  assert serving.latest(push_dir).version == good.version
  ((version, moved_to, found),) = serving.set_aside(push_dir)
  assert (version, found) == (bad.version, serving.version_problem(moved_to))
  assert moved_to == os.path.join(push_dir, serving.DAMAGED_DIR, str(bad.version))
  assert serving.versions(push_dir) == [good.version]
  assert serving.set_aside_versions(push_dir) == [(bad.version, moved_to, found)]
  assert serving.set_aside(push_dir) == []
  assert serving.push(model, eval_model, push_dir, {}).version > bad.version


def test_versions_are_checked_without_tensorflow(tmp_path):
  """A run stopped at its checks (a bad CSV file) checks the serving versions
  first: without importing TensorFlow, which takes seconds."""
  model, eval_model = _model(tmp_path)
  push_dir = tmp_path / 's'
  intact = serving.push(model, eval_model, str(push_dir), {})
  damaged = serving.push(model, eval_model, str(push_dir), {})
  pathlib.Path(damaged.path, 'saved_model.pb').write_bytes(_saved_model_pb('eval'))
  code = (
    f'import sys; from components import serving; d = {str(push_dir)!r}; '
    'print(serving.latest(d).version, serving.set_aside(d), '
    "serving.latest(d).baseline_model_uri is not None, 'tensorflow' in sys.modules)"
  )
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  moved = os.path.join(push_dir, serving.DAMAGED_DIR, str(damaged.version))
  problem = "saved_model.pb has no 'serving_default' signature"
  assert result.stdout.split('\n')[0] == (
    f'{intact.version} {[(damaged.version, moved, problem)]} True False'
  )


def test_a_changed_file_is_damage_too(tmp_path):
  model, eval_model = _model(tmp_path)
  pushed = serving.push(model, eval_model, str(tmp_path / 's'), {})
  pathlib.Path(pushed.path, 'variables', 'variables.index').write_bytes(b'i')
  assert serving.version_problem(pushed.path) == (
    f'variables{os.sep}variables.index has 1 bytes, 3 when pushed'
  )


def test_a_damaged_eval_model_is_no_baseline_but_still_serves(tmp_path):
  model, eval_model = _model(tmp_path)
  pushed = serving.push(model, eval_model, str(tmp_path / 's'), {})
  with open(os.path.join(pushed.path, serving.EVAL_MODEL_DIR, 'saved_model.pb'), 'wb') as f:
    f.write(b'\xff\xff garbage')
  latest = serving.latest(str(tmp_path / 's'))
  assert latest.version == pushed.version
  assert latest.baseline_model_uri is None


def test_an_eval_model_missing_a_file_is_no_baseline(tmp_path):
  model, eval_model = _model(tmp_path)
  pathlib.Path(eval_model, 'variables').mkdir()
  pathlib.Path(eval_model, 'variables', 'variables.index').write_bytes(b'idx')
  pushed = serving.push(model, eval_model, str(tmp_path / 's'), {})
  os.remove(os.path.join(pushed.path, serving.EVAL_MODEL_DIR, 'variables', 'variables.index'))
  latest = serving.latest(str(tmp_path / 's'))
  assert latest.version == pushed.version and latest.baseline_model_uri is None


def test_push_is_a_compare_and_swap_on_the_serving_version(tmp_path):
  model, eval_model = _model(tmp_path)
  push_dir = str(tmp_path / 's')
  first = serving.push(model, eval_model, push_dir, {}, expected_serving=0)
  # Compared with `first`, but another push landed in between: refused.
  second = serving.push(model, eval_model, push_dir, {}, expected_serving=first.version)
  with pytest.raises(serving.StaleBaselineError, match=f'serving version {second.version}'):
    serving.push(model, eval_model, push_dir, {}, expected_serving=first.version)
  with pytest.raises(serving.StaleBaselineError):
    serving.push(model, eval_model, push_dir, {}, expected_serving=0)
  assert serving.versions(push_dir) == [first.version, second.version]
  assert not [n for n in os.listdir(push_dir) if n.startswith('.incoming')]


def _pusher_inputs(tmp_path, serving_check):
  from tfx.types import standard_artifacts

  from components.evaluation import BASELINE_VERSION_KEY, SERVING_CHECK_KEY

  model = standard_artifacts.Model()
  model.uri = str(tmp_path / 'model')
  serving_model, eval_model = _model(tmp_path)
  os.makedirs(model.uri)
  os.rename(serving_model, os.path.join(model.uri, 'Format-Serving'))
  os.rename(eval_model, os.path.join(model.uri, 'Format-TFMA'))
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / 'blessing')
  blessing.set_int_custom_property('blessed', 1)
  blessing.set_int_custom_property(BASELINE_VERSION_KEY, 0)
  if serving_check is not None:
    blessing.set_string_custom_property(SERVING_CHECK_KEY, serving_check)
  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / 'pushed')
  return {'model': [model], 'model_blessing': [blessing]}, {'pushed_model': [pushed]}


@pytest.mark.parametrize(
  'serving_check, reason',
  [
    ('the model predicts NaN or infinity', 'the model predicts NaN or infinity'),
    (None, 'the blessing records no smoke check of the serving model'),
  ],
)
def test_the_pusher_pushes_only_after_a_passed_smoke_check(tmp_path, serving_check, reason):
  from tfx.proto import pusher_pb2
  from tfx.utils import json_utils, proto_utils

  from components.pushing import NOT_PUSHED_KEY, AtomicPusherExecutor

  push_dir = str(tmp_path / 'serving')
  destination = pusher_pb2.PushDestination(
    filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=push_dir)
  )
  properties = {
    'push_destination': proto_utils.proto_to_json(destination),
    'custom_config': json_utils.dumps({}),
  }
  inputs, outputs = _pusher_inputs(tmp_path / 'refused', serving_check)
  AtomicPusherExecutor().Do(inputs, outputs, properties)
  (pushed,) = outputs['pushed_model']
  assert pushed.get_int_custom_property('pushed') == 0
  assert pushed.get_string_custom_property(NOT_PUSHED_KEY) == reason
  assert serving.latest(push_dir) is None

  inputs, outputs = _pusher_inputs(tmp_path / 'passed', '')
  AtomicPusherExecutor().Do(inputs, outputs, properties)
  (pushed,) = outputs['pushed_model']
  assert pushed.get_int_custom_property('pushed') == 1
  assert serving.latest(push_dir).record['model_uri'] == inputs['model'][0].uri


def test_half_copied_versions_of_a_killed_push_are_removed(tmp_path):
  model, eval_model = _model(tmp_path)
  push_dir = str(tmp_path / 's')
  pushed = serving.push(model, eval_model, push_dir, {})
  leftover = pathlib.Path(push_dir, '.incoming-0123abcd', 'variables')
  leftover.mkdir(parents=True)
  assert serving.remove_staging(push_dir) == [str(leftover.parent)]
  assert not leftover.parent.exists() and serving.versions(push_dir) == [pushed.version]
  assert serving.remove_staging(push_dir) == []


def test_a_push_killed_mid_copy_leaves_the_serving_version_and_is_cleaned(tmp_path):
  """SIGKILL while the candidate is copied: the serving version is untouched
  (the new one was never renamed into place) and the next run's
  `remove_staging` removes the half copy."""
  import signal
  import subprocess
  import sys
  import textwrap

  model, eval_model = _model(tmp_path)
  push_dir = str(tmp_path / 's')
  serving_now = serving.push(model, eval_model, push_dir, {})
  child = subprocess.Popen(
    [
      sys.executable,
      '-c',
      textwrap.dedent(f"""
        import shutil, sys, time
        from unittest import mock
        from components import serving

        def slow_copy(source, target):
          shutil.copytree(source, target)
          print('copied', flush=True)
          time.sleep(600)

        with mock.patch('tfx.utils.io_utils.copy_dir', slow_copy):
          serving.push({model!r}, None, {push_dir!r}, {{}})
      """),
    ],
    stdout=subprocess.PIPE,
    text=True,
  )
  assert child.stdout.readline().strip() == 'copied'
  child.send_signal(signal.SIGKILL)
  child.wait()
  (leftover,) = [n for n in os.listdir(push_dir) if n.startswith('.incoming')]
  assert serving.latest(push_dir).version == serving_now.version
  assert serving.versions(push_dir) == [serving_now.version]
  assert serving.remove_staging(push_dir) == [os.path.join(push_dir, leftover)]
  assert sorted(n for n in os.listdir(push_dir) if not n.startswith('.push')) == [
    str(serving_now.version)
  ]
