"""input_fn, model_fn in every mode, the three estimator kinds, and the serving receiver."""

import collections

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow import estimator as tf_estimator

from components.serving import load_predictor
from tests.conftest import MISSING_ROW, read_rows, serialize
from trainer_module import inputs, model
from trainer_module.features import FEATURES, LABEL_KEY, transformed_name


def _input(transformed, training, **kwargs):
  transform_dir, pattern, _, _ = transformed
  return inputs.input_fn(
    pattern, tft.TFTransformOutput(transform_dir), 32, training=training, shuffle_seed=1, **kwargs
  )


def _estimator(kind, tmp_path):
  run_config = tf_estimator.RunConfig(
    model_dir=str(tmp_path / kind), tf_random_seed=1, save_checkpoints_steps=1000
  )
  return model.build_estimator(kind, run_config, [16, 8], 0.01)


def test_input_fn_yields_transformed_features_and_label(transformed):
  features, label = next(iter(_input(transformed, training=False)))
  assert set(features) == {transformed_name(k) for k in FEATURES}
  assert label.dtype == tf.int64 and label.shape == (32,)
  assert all(t.shape == (32,) for t in features.values())


def test_input_fn_in_the_estimators_graph_gives_transforms_values(transformed):
  """The Estimator calls input_fn in graph mode, where the raw rows are
  transformed by the imported TF1 graph: every value is the one tft_beam wrote."""
  transform_dir, pattern, out, _ = transformed
  read = collections.defaultdict(list)
  with tf.Graph().as_default():
    dataset = inputs.input_fn(pattern, tft.TFTransformOutput(transform_dir), 32, training=False)
    batch = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
    with tf.compat.v1.train.MonitoredSession() as session:
      while True:
        try:
          features, label = session.run(batch)
        except tf.errors.OutOfRangeError:
          break
        for name, values in {**features, LABEL_KEY: label}.items():
          read[name].append(values)
  assert set(read) == {transformed_name(k) for k in FEATURES} | {LABEL_KEY}
  for name, batches in read.items():
    expected = np.sort([row[name] for row in out])
    np.testing.assert_allclose(
      np.sort(np.concatenate(batches)), expected, rtol=1e-6, atol=1e-6, err_msg=name
    )  # float32: the graph sums in another order than tft_beam


def test_input_fn_eval_is_one_pass_and_shards_are_disjoint(transformed):
  _, _, rows, _ = transformed
  assert sum(int(label.shape[0]) for _, label in _input(transformed, training=False)) == len(rows)
  trip_miles = transformed_name('trip_miles')

  def shard_values(index):
    ds = _input(transformed, training=False, num_shards=2, shard_index=index)
    return np.concatenate([f[trip_miles].numpy() for f, _ in ds])

  first, second = shard_values(0), shard_values(1)
  assert len(first) + len(second) == len(rows)
  assert abs(len(first) - len(second)) <= 1


def test_input_fn_training_repeats(transformed):
  _, _, rows, _ = transformed
  batches = len(rows) // 32 + 5
  assert len(list(_input(transformed, training=True).take(batches))) == batches


def test_model_fn_train_eval_predict(transformed, tmp_path):
  estimator = _estimator('custom', tmp_path)
  estimator.train(lambda: _input(transformed, training=True), max_steps=40)
  metrics = estimator.evaluate(lambda: _input(transformed, training=False), steps=5)
  assert {'auc', 'accuracy', 'precision', 'recall', 'loss'} <= set(metrics)
  assert 0.5 < metrics['auc'] <= 1.0
  assert metrics['global_step'] == 40
  predictions = list(
    estimator.predict(
      lambda: _input(transformed, training=False).map(lambda features, _: features).take(1)
    )
  )
  assert len(predictions) == 32
  assert all(0.0 <= p['logistic'][0] <= 1.0 for p in predictions)


def test_model_fn_predict_mode_exports_classification_and_predict(transformed):
  features, _ = next(iter(_input(transformed, training=False)))
  with tf.Graph().as_default():
    placeholders = {k: tf.compat.v1.placeholder(v.dtype, [None]) for k, v in features.items()}
    spec = model.model_fn(
      placeholders,
      None,
      tf_estimator.ModeKeys.PREDICT,
      {'hidden_units': [4], 'learning_rate': 0.01},
    )
  assert spec.loss is None and spec.train_op is None
  assert set(spec.export_outputs) == {'serving_default', 'predict'}


@pytest.fixture(scope='module', params=['custom', 'canned', 'keras'])
def exported(request, transformed, tmp_path_factory):
  """(kind, estimator trained a few steps, its serving export): built once per
  kind, since graph building and export are most of these tests' time."""
  kind = request.param
  transform_dir, _, _, _ = transformed
  tmp_path = tmp_path_factory.mktemp(kind)
  estimator = _estimator(kind, tmp_path)
  estimator.train(lambda: _input(transformed, training=True), max_steps=30)
  tft_output = tft.TFTransformOutput(transform_dir)
  export_dir = estimator.export_saved_model(
    str(tmp_path / 'export'), lambda: inputs.serving_input_receiver_fn(tft_output, 'tips')
  )
  return kind, estimator, export_dir.decode()


def test_serving_receiver_takes_raw_examples(exported, raw_feature_spec):
  _, _, export_dir = exported
  predict = load_predictor(export_dir)
  rows = [*read_rows(20), MISSING_ROW]
  probabilities = predict([serialize(r, raw_feature_spec) for r in rows])
  assert probabilities.shape == (len(rows),)
  assert np.all((probabilities >= 0) & (probabilities <= 1))
  assert probabilities.std() > 0  # depends on the input


def test_warm_start_reuses_the_serving_weights(exported, transformed, tmp_path):
  from trainer_module.trainer import warm_start_settings

  kind, first, export_dir = exported
  run_config = tf_estimator.RunConfig(model_dir=str(tmp_path / 'b'), tf_random_seed=2)
  second = model.build_estimator(
    kind, run_config, [16, 8], 0.01, warm_start_from=warm_start_settings(export_dir)
  )
  second.train(lambda: _input(transformed, training=True), max_steps=1)
  slots = ('Adagrad', 'Ftrl', 'accumulator', 'optimizer', 'training/')
  weights = [
    n
    for n in first.get_variable_names()
    if any(w in n for w in ('kernel', 'embeddings', 'weights'))
    and not any(s in n for s in slots)
    and n in second.get_variable_names()
  ]
  assert len(weights) >= 3
  for name in weights:
    # One optimizer step moves a weight by about the learning rate; a fresh
    # initialisation (another seed) would differ by far more.
    diff = np.abs(second.get_variable_value(name) - first.get_variable_value(name)).max()
    assert diff < 0.05, name
