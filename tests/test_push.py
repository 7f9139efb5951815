"""The push destination: atomic, monotonically versioned, with a record for baselines."""

import concurrent.futures
import os
from unittest import mock

from components import serving


def _model(tmp_path, name='m'):
  model = tmp_path / name
  (model / 'variables').mkdir(parents=True)
  (model / 'saved_model.pb').write_bytes(b'pb')
  (model / 'variables' / 'variables.index').write_bytes(b'idx')
  eval_model = tmp_path / f'{name}_eval'
  eval_model.mkdir()
  (eval_model / 'saved_model.pb').write_bytes(b'eval')
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
  # Nothing but the version is left in the serving directory.
  assert os.listdir(tmp_path / 'serving') == [str(pushed.version)]


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
  with mock.patch('time.time', return_value=1_700_000_000.0):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
      results = list(pool.map(
          lambda i: serving.push(model, eval_model, str(tmp_path / 's'), {'i': i}), range(8)))
  assert len({r.version for r in results}) == 8
  assert len(serving.versions(str(tmp_path / 's'))) == 8


def test_a_failed_copy_leaves_no_version_and_no_debris(tmp_path):
  model, eval_model = _model(tmp_path)
  serving_dir = tmp_path / 's'
  with mock.patch('tfx.utils.io_utils.copy_dir', side_effect=OSError('disk full')):
    try:
      serving.push(model, eval_model, str(serving_dir), {})
    except OSError:
      pass
  assert serving.versions(str(serving_dir)) == []
  assert not [n for n in os.listdir(serving_dir) if n.startswith('.incoming')]


def test_incomplete_directories_are_not_versions(tmp_path):
  (tmp_path / 's' / '123').mkdir(parents=True)  # no saved_model.pb
  (tmp_path / 's' / 'notes').mkdir()
  assert serving.versions(str(tmp_path / 's')) == []
  assert serving.latest(str(tmp_path / 's')) is None
