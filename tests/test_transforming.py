"""Transform's executor traces the preprocessing_fn once for TFT's inspections."""

import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform import impl_helper
from tensorflow_transform.beam import analysis_graph_builder, analyzer_cache

from components import transforming

SPECS = {
  'x': tf.io.FixedLenFeature([], tf.float32),
  'unused': tf.io.FixedLenFeature([], tf.float32),
  'y': tf.io.FixedLenFeature([], tf.string),
}
DATASETS = [analyzer_cache.DatasetKey('train')]


def _counting():
  calls = []

  def preprocessing_fn(inputs):
    calls.append(1)
    return {'x_scaled': tft.scale_to_z_score(inputs['x']), 'y': inputs['y']}

  return preprocessing_fn, calls


def _inspect(fn):
  return (
    sorted(tft.get_analyze_input_columns(fn, SPECS, force_tf_compat_v1=True)),
    sorted(tft.get_transform_input_columns(fn, SPECS, force_tf_compat_v1=True)),
  )


def test_the_inspections_share_one_trace_and_give_tfts_answers():
  expected = _inspect(_counting()[0])
  originals = (tft.get_analyze_input_columns, impl_helper.trace_preprocessing_function)
  fn, calls = _counting()
  with transforming._traced_less(cache_disabled=True) as inspected:
    inspected.preprocessing_fn = fn
    assert _inspect(fn) == _inspect(fn) == expected == (['x'], ['x', 'y'])
    assert len(calls) == 1
    # The analysis traces its own graph, which it builds on.
    impl_helper.trace_preprocessing_function(fn, SPECS, use_tf_compat_v1=True)
    assert len(calls) == 2
    # No analyzer cache: its keys are not computed for this preprocessing_fn.
    assert analysis_graph_builder.get_analysis_cache_entry_keys(fn, SPECS, DATASETS, True) == []
    # Another preprocessing_fn is TFT's business as usual.
    other, other_calls = _counting()
    assert _inspect(other) == expected and len(other_calls) == 2
  assert (tft.get_analyze_input_columns, impl_helper.trace_preprocessing_function) == originals
  # Outside the executor, every call traces again.
  _inspect(fn)
  assert len(calls) == 4


def test_with_an_analyzer_cache_its_keys_are_computed():
  fn, _ = _counting()
  with transforming._traced_less(cache_disabled=False) as inspected:
    inspected.preprocessing_fn = fn
    keys = analysis_graph_builder.get_analysis_cache_entry_keys(fn, SPECS, DATASETS, True)
  assert keys == analysis_graph_builder.get_analysis_cache_entry_keys(fn, SPECS, DATASETS, True)
  assert keys  # scale_to_z_score's mean and variance
