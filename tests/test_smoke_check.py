"""The candidate predicts on raw examples in a fresh process before it is pushed."""

import tensorflow as tf

from components import smoke_check


def _examples(tmp_path):
  path = tmp_path / 'Split-eval' / 'data.gz'
  path.parent.mkdir()
  with tf.io.TFRecordWriter(str(path), options='GZIP') as writer:
    for i in range(5):
      example = tf.train.Example(
        features=tf.train.Features(
          feature={'x': tf.train.Feature(float_list=tf.train.FloatList(value=[float(i)]))}
        )
      )
      writer.write(example.SerializeToString())
  return str(path.parent / '*')


def _model(tmp_path, scale):
  class Model(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
    def serve(self, examples):
      x = tf.io.parse_example(examples, {'x': tf.io.FixedLenFeature([1], tf.float32)})['x']
      return {'scores': x * scale}

  model = Model()
  path = str(tmp_path / f'model-{scale}')
  tf.saved_model.save(model, path, signatures={'serving_default': model.serve})
  return path


def test_a_sound_model_passes(tmp_path):
  assert smoke_check.run_in_fresh_process(_model(tmp_path, 2.0), _examples(tmp_path)) is None


def test_a_model_predicting_nan_is_refused(tmp_path):
  problem = smoke_check.run_in_fresh_process(_model(tmp_path, float('nan')), _examples(tmp_path))
  assert problem == "the model predicts NaN or infinity ('scores') on raw eval examples"


def test_a_model_that_does_not_load_is_refused(tmp_path):
  broken = tmp_path / 'broken'
  broken.mkdir()
  (broken / 'saved_model.pb').write_bytes(b'\xff\xff not a model')
  problem = smoke_check.run_in_fresh_process(str(broken), _examples(tmp_path))
  assert problem.startswith('the model does not load')


def test_a_prewarmed_process_is_taken_once_and_gives_the_same_findings(tmp_path):
  examples = _examples(tmp_path)
  smoke_check.prewarm()
  warm = smoke_check._warm.popen
  problem = smoke_check.run_in_fresh_process(_model(tmp_path, float('nan')), examples)
  assert problem == "the model predicts NaN or infinity ('scores') on raw eval examples"
  assert warm.returncode == 1 and smoke_check._warm is None
  # The next check, with none prewarmed, starts its own process.
  assert smoke_check.run_in_fresh_process(_model(tmp_path, 2.0), examples) is None


def test_a_prewarmed_process_nobody_takes_is_stopped(tmp_path):
  smoke_check.prewarm()
  warm = smoke_check._warm.popen
  smoke_check.discard_warm()
  assert warm.returncode is not None and smoke_check._warm is None
  smoke_check.discard_warm()  # nothing to stop


def test_a_waiting_process_told_nothing_exits_quietly():
  import subprocess
  import sys

  process = subprocess.run(
    [sys.executable, '-m', 'components.smoke_check', '--wait'],
    input='',
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert process.returncode == 0, process.stderr
