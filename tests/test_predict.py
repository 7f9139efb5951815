"""`pipeline predict`'s reading of a CSV file into the raw tf.Examples a client sends."""

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from components.contract import MISSING_VALUES
from components.csv_check import DataError
from pipeline.views import predict

SCHEMA = schema_pb2.Schema(
  feature=[
    schema_pb2.Feature(name='age', type=schema_pb2.FLOAT),
    schema_pb2.Feature(name='rooms', type=schema_pb2.INT),
    schema_pb2.Feature(name='city', type=schema_pb2.BYTES),
    schema_pb2.Feature(name='y', type=schema_pb2.BYTES),
  ]
)


def _examples(tmp_path, text):
  path = tmp_path / 'rows.csv'
  path.write_text(text)
  return predict.examples(path, SCHEMA, 'y', MISSING_VALUES)


def test_rows_become_typed_examples_with_missing_cells_absent(tmp_path):
  absent, serialized = _examples(tmp_path, 'city,age,rooms,y\nNA,NA,,yes\n"Oslo, N", 31.5 ,3,no\n')
  assert absent == []
  first, second = (tf.train.Example.FromString(s).features.feature for s in serialized)
  # `NA` is a missing number, but a value of a text column; the label is never sent.
  assert set(first) == {'city'} and first['city'].bytes_list.value == [b'NA']
  assert second['age'].float_list.value == [31.5]
  assert second['rooms'].int64_list.value == [3]
  assert second['city'].bytes_list.value == [b'Oslo, N']
  assert 'y' not in second


def test_a_column_the_file_lacks_is_missing_and_reported(tmp_path):
  absent, serialized = _examples(tmp_path, 'age,city\n3,x\n')
  assert absent == ['rooms']
  assert set(tf.train.Example.FromString(serialized[0]).features.feature) == {'age', 'city'}


@pytest.mark.parametrize(
  'text, message',
  [
    (
      'age,cty\n1,x\n',
      "column 'cty' is not in the schema; expected columns: 'age', 'rooms', 'city'",
    ),
    ('age,rooms\n1,2.5\n', "line 2: column 'rooms' holds '2.5', expected an integer"),
    ('age,rooms\nold,2\n', "line 2: column 'age' holds 'old', expected a number"),
    ('age,rooms\ninf,2\n', "line 2: column 'age' holds 'inf', expected a number"),
    ('age,rooms\n1\n', 'line 2: 1 cells, the header has 2'),
    ('age,rooms\n', 'a header but no data rows'),
    ('', 'empty file'),
  ],
)
def test_a_bad_file_is_one_line_naming_the_column(tmp_path, text, message):
  with pytest.raises(DataError, match=r'rows\.csv') as error:
    _examples(tmp_path, text)
  assert message in str(error.value) and '\n' not in str(error.value)
