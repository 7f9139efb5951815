"""The Arrow CSV reader writes exactly the examples TFX's CSV path writes."""

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from tfx.components.example_gen.csv_example_gen import executor as tfx_csv

from components import csv_ingest
from tests.conftest import DATA_CSV

# A quoted cell over two lines, an empty column, an int beyond int64, 'NA'
# and 'nan' among strings, '+3' and ' 4' (Python reads them as ints), 'inf'.
EDGE_CASES = """id,quoted,number,mixed,empty,big,text_na,spaced
1,"a, ""quoted""
cell",1.5,7,,9223372036854775808,NA,+3
2,plain,inf,x,,1,nan, 4
3,,-2,8.5,,2,,5
"""


def _canonical(example: bytes) -> bytes:
  return tf.train.Example.FromString(example).SerializeToString(deterministic=True)


def _read(path) -> list[bytes]:
  return sorted(_canonical(r) for r in tf.compat.v1.io.tf_record_iterator(str(path)))


def _write(examples, path):
  return examples | f'Write[{path.name}]' >> beam.io.WriteToTFRecord(
    str(path), shard_name_template=''
  )


def tfx_examples(directory, out) -> list[bytes]:
  with beam.Pipeline() as pipeline:
    examples = pipeline | tfx_csv._CsvToExample({'input_base': str(directory)}, '*.csv')
    _write(examples | beam.Map(lambda e: e.SerializeToString()), out / 'tfx')
  return _read(out / 'tfx')


def our_examples(directory, out, buckets, missing=()) -> list[list[bytes]]:
  files = sorted(str(p) for p in directory.glob('*.csv'))
  destinations = [out / f'ours-{index}' for index in range(len(buckets))]
  for d in destinations:
    d.mkdir(parents=True)
  with beam.Pipeline() as pipeline:
    _ = pipeline | csv_ingest.WriteSplitExamples(
      files, buckets, [str(d) for d in destinations], missing=missing
    )
  return [
    sorted(
      _canonical(r)
      for f in d.glob('*.gz')
      for r in tf.compat.v1.io.tf_record_iterator(
        str(f), tf.io.TFRecordOptions(compression_type='GZIP')
      )
    )
    for d in destinations
  ]


@pytest.mark.parametrize('content', ['taxi', 'edge_cases'])
def test_the_examples_are_tfxs(tmp_path, content):
  data, out = tmp_path / 'data', tmp_path / 'out'
  data.mkdir()
  if content == 'taxi':  # two files of one span: types are inferred over both
    lines = DATA_CSV.read_text().splitlines(keepends=True)
    (data / 'a.csv').write_text(''.join(lines[:1200]))
    (data / 'b.csv').write_text(''.join(lines[:1] + lines[1200:2400]))
  else:
    (data / 'a.csv').write_text(EDGE_CASES)
  (ours,) = our_examples(data, out, [1])
  assert ours == tfx_examples(data, out)


def test_rows_split_two_to_one_and_the_same_way_every_time(tmp_path):
  data = tmp_path / 'data'
  data.mkdir()
  lines = DATA_CSV.read_text().splitlines(keepends=True)[:3001]
  (data / 'a.csv').write_text(''.join(lines))
  train, evaluation = our_examples(data, tmp_path / 'one', [2, 3])
  assert len(train) + len(evaluation) == 3000
  assert 0.6 < len(train) / 3000 < 0.73
  # Reversed row order, the same sides: the side is the row's, not its position's.
  (data / 'a.csv').write_text(''.join(lines[:1] + lines[:0:-1]))
  assert our_examples(data, tmp_path / 'two', [2, 3]) == [train, evaluation]


def test_buckets_are_a_hash_of_the_cells():
  batch = pa.RecordBatch.from_arrays(
    [pa.array(['1', '1', None]), pa.array(['a', 'a', 'b'])], ['x', 'y']
  )
  buckets = csv_ingest.buckets_of(batch, 1000)
  assert buckets[0] == buckets[1] and np.all((buckets >= 0) & (buckets < 1000))


def test_missing_tokens_are_missing_numbers_and_values_of_text(tmp_path):
  """R's and pandas' `NA` in a numeric column is a missing number, not text; in a
  text column (`NA` may be a country) it stays a value; a column of tokens is empty."""
  from components.contract import MISSING_VALUES

  data, out = tmp_path / 'data', tmp_path / 'out'
  data.mkdir()
  (data / 'a.csv').write_text('n,i,t,only\n1.5,3,NA,NA\nNA, null ,x,null\n 2 ,NaN,NA,\n')
  (ours,) = our_examples(data, out, [1], missing=MISSING_VALUES)
  rows = sorted(
    (tuple(tf.train.Example.FromString(r).features.feature[k] for k in 'nito') for r in ours),
    key=lambda f: f[2].bytes_list.value[0],
  )
  numbers = [list(n.float_list.value) for n, *_ in rows]
  assert sorted(numbers) == [[], [1.5], [2.0]]
  assert sorted(list(i.int64_list.value) for _, i, *_ in rows) == [[], [], [3]]
  assert [t.bytes_list.value[0] for *_, t, _ in rows] == [b'NA', b'NA', b'x']
  assert all(o.WhichOneof('kind') is None for *_, o in rows)


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
  from components.csv_check import check_csv_files

  data, out = tmp_path / 'data', tmp_path / 'out'
  data.mkdir()
  (data / 'a.csv').write_bytes('\ufeffid,x\n1,2.5\n'.encode())
  assert check_csv_files(str(data)) == [str(data / 'a.csv')]
  assert csv_ingest.header(str(data / 'a.csv')) == ['id', 'x']
  (ours,) = our_examples(data, out, [1])
  assert set(tf.train.Example.FromString(ours[0]).features.feature) == {'id', 'x'}


def test_a_quoted_name_may_hold_a_line_break(tmp_path):
  """The header is the first CSV record, not the first line."""
  data, out = tmp_path / 'data', tmp_path / 'out'
  data.mkdir()
  (data / 'a.csv').write_bytes(b'"size\r\n(m2)","say ""hi"""\n1.5,a\n2,"b\nc"\n')
  assert csv_ingest.header(str(data / 'a.csv')) == ['size\r\n(m2)', 'say "hi"']
  (ours,) = our_examples(data, out, [1])
  examples = [tf.train.Example.FromString(e).features.feature for e in ours]
  assert sorted(e['size\r\n(m2)'].float_list.value[0] for e in examples) == [1.5, 2.0]
  assert sorted(e['say "hi"'].bytes_list.value[0] for e in examples) == [b'a', b'b\nc']


# Windows line ends, an empty line, no line break at the end.
RANGED = 'a,b,c\r\n' + ''.join(f'{i},{i * 0.5},t{i % 3}\r\n' for i in range(20)) + '\r\n21,2.5,z'


@pytest.mark.parametrize('range_bytes', [1, 13, 64])
def test_a_quote_free_file_read_in_byte_ranges_gives_the_same_examples(
  tmp_path, monkeypatch, range_bytes
):
  data = tmp_path / 'data'
  data.mkdir()
  (data / 'a.csv').write_bytes(RANGED.encode())
  whole = our_examples(data, tmp_path / 'whole', [2, 3])
  monkeypatch.setattr(csv_ingest, 'RANGE_BYTES', range_bytes)
  expected = -(-len(RANGED) // range_bytes) if range_bytes < len(RANGED) else 1
  assert len(csv_ingest.ranges(str(data / 'a.csv'))) == expected
  assert our_examples(data, tmp_path / 'ranged', [2, 3]) == whole
  assert sum(len(split) for split in whole) == 21


def test_a_file_with_quotes_or_compressed_is_read_whole(tmp_path, monkeypatch):
  import gzip

  monkeypatch.setattr(csv_ingest, 'RANGE_BYTES', 8)
  (tmp_path / 'q.csv').write_text(EDGE_CASES)
  with gzip.open(tmp_path / 'r.csv.gz', 'wt') as f:
    f.write(RANGED)
  (tmp_path / 'r.csv').write_text(RANGED)
  assert csv_ingest.ranges(str(tmp_path / 'q.csv')) == [(0, None)]
  assert csv_ingest.ranges(str(tmp_path / 'r.csv.gz')) == [(0, None)]
  assert len(csv_ingest.ranges(str(tmp_path / 'r.csv'))) > 1
