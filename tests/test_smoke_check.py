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
