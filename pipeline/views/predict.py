"""`python -m pipeline predict`: a served model's predictions for the rows of a CSV file.

Each row becomes the raw tf.Example a serving client sends, typed by the
curated schema: an empty cell, or a missing-value token (the config's
`missing_values`) in a numeric column, is a missing value. The model's
default signature (what TF Serving's Classify and Regress call) answers, so
classes come back by the names the model serves (the table's class names).
"""

import contextlib
import csv
import math
import pathlib
import sys

from components.csv_check import DataError


def examples(path: pathlib.Path, schema, label: str, missing_values: tuple[str, ...]):
  """(the schema's columns the file lacks, the rows of the CSV file at `path` as
  serialized raw tf.Examples, the label left out).

  Raises:
    DataError: a column the schema does not have, or a cell not of its
      column's type; the message names the file, line, column and what was expected.
  """
  import tensorflow as tf
  from tensorflow_metadata.proto.v0 import schema_pb2

  types = {f.name: f.type for f in schema.feature if f.name != label}
  missing = frozenset(missing_values)
  with open(path, newline='', encoding='utf-8-sig') as f:
    reader = csv.reader(f)
    header = next(reader, None)
    if not header:
      raise DataError(f'{path}: empty file, expected a CSV header line')
    unknown = [c for c in header if c not in types and c != label]
    if unknown:
      raise DataError(
        f'{path}: column {unknown[0]!r} is not in the schema; '
        f'expected columns: {", ".join(map(repr, types))}'
      )
    # A column the model may not use (an id left out of the features): absent
    # is missing in every row, as a client may send it.
    absent = [c for c in types if c not in header]
    serialized = []
    for row in reader:
      if not row:
        continue
      if len(row) != len(header):
        raise DataError(
          f'{path} line {reader.line_num}: {len(row)} cells, the header has {len(header)}'
        )
      feature = {}
      for name, cell in zip(header, row, strict=True):
        if name == label:
          continue
        kind, cell = types[name], cell.strip()
        if cell == '' or (kind != schema_pb2.BYTES and cell in missing):
          continue
        try:
          feature[name] = _feature(tf, schema_pb2, kind, cell)
        except ValueError:
          expected = {schema_pb2.INT: 'an integer', schema_pb2.FLOAT: 'a number'}[kind]
          raise DataError(
            f'{path} line {reader.line_num}: column {name!r} holds {cell!r}, expected {expected}'
          ) from None
      serialized.append(
        tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
      )
  if not serialized:
    raise DataError(f'{path}: a header but no data rows')
  return absent, serialized


def _feature(tf, schema_pb2, kind, cell: str):
  if kind == schema_pb2.INT:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(cell)]))
  if kind == schema_pb2.FLOAT:
    value = float(cell)
    if not math.isfinite(value):
      raise ValueError(cell)
    return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[cell.encode()]))


def predictions(model_dir: str, serialized: list[bytes]) -> tuple[list[str], list[list]]:
  """(column names, one row of values per example) from the model's default signature:
  `class` and `p(<class>)` per class for a classifier, `prediction` for a regressor."""
  import tensorflow as tf

  model = tf.saved_model.load(model_dir)
  signature = model.signatures['serving_default']
  (name,) = signature.structured_input_signature[1]
  outputs = signature(**{name: tf.constant(serialized)})
  if 'scores' in outputs and 'classes' in outputs:
    scores = outputs['scores'].numpy()
    classes = [c.decode() for c in outputs['classes'].numpy()[0]]
    rows = [[classes[int(s.argmax())], *(round(float(p), 6) for p in s)] for s in scores]
    return ['class', *(f'p({c})' for c in classes)], rows
  values = [v for k, v in outputs.items() if k in ('outputs', 'predictions')]
  if len(values) != 1:
    raise ValueError(
      f'{model_dir}: its default signature returns {", ".join(sorted(outputs))}; '
      'expected classes and scores (a classifier) or outputs (a regressor)'
    )
  return ['prediction'], [[round(float(v), 6)] for v in values[0].numpy().reshape(-1)]


def main(config, model_dir: str, data: pathlib.Path, output: pathlib.Path | None):
  """Writes the predictions for the rows of `data` as CSV to `output` (or stdout).

  Returns:
    (rows predicted, the schema's columns the file lacks: sent as missing).
  """
  from pipeline.scaffold import schema as schema_lib

  absent, serialized = examples(
    data, schema_lib.load(config.schema_file), config.task.label, config.missing_values
  )
  columns, rows = predictions(model_dir, serialized)
  with contextlib.ExitStack() as stack:
    out = stack.enter_context(open(output, 'w', newline='')) if output else sys.stdout
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows(rows)
  return len(rows), absent
