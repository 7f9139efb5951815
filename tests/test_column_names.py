"""components.column_names against what TF Transform and TensorFlow really do."""

import pytest

from components.column_names import check_names, name_problem

NAMES = [
  'fare',
  'a b/c',
  'a>b',
  'a>/b',
  'a>>b',
  '>',
  'x>',
  '<img src=x onerror=alert(2)>',
  '<b>city \\ """',
  "age', 'a>ge",
  'caf\u00e9 \u2028',
  'line\r\nbreak',
  '_x',
  '-x',
  '..',
  '/x',
  'x' * 300,
]


def _transform_accepts(name: str) -> bool:
  """Whether TFT's placeholder for a column `name` survives TF's graph import,
  the step where Transform fails."""
  import tensorflow as tf
  from tensorflow_transform import impl_helper

  graph = tf.Graph()
  with graph.as_default():
    placeholder = impl_helper._batched_placeholder_from_feature_spec(
      name, tf.io.VarLenFeature(tf.float32)
    )
    tf.identity(placeholder.values)
  try:
    with tf.Graph().as_default():
      tf.graph_util.import_graph_def(graph.as_graph_def(), name='')
  except ValueError as e:
    assert 'invalid characters' in str(e)
    return False
  return True


@pytest.mark.parametrize('name', NAMES)
def test_the_mirror_agrees_with_transform(name):
  assert (name_problem(name) is None) == _transform_accepts(name)


def test_refusals_name_every_column():
  with pytest.raises(ValueError) as e:
    check_names(['ok', 'x>', '<i>'], 'data.csv')
  assert str(e.value).startswith("data.csv: column 'x>': TensorFlow refuses it")
  assert "column '<i>'" in str(e.value) and "'ok'" not in str(e.value)
  assert name_problem('') == 'an empty column name'
