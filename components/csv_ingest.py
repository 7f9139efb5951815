"""CSV files to serialized tf.Examples in hash-bucket splits, with Arrow and tfx-bsl.

TFX's CSV path parses, types and builds every example in Python, a row at a
time: 2,700 rows/s measured on 1.5 M taxi rows on 2 cores. Here Arrow's CSV
reader reads each file in blocks, each column is cast in one call, rows are
split in one numpy call and tfx-bsl's C++ encoder writes the examples.

The examples are TFX's: a column's type is inferred over every file of a
span as TFX infers it (INT if every value is an integer, else FLOAT if every
value is a number, else STRING); an empty cell is a missing value (an empty
list of the column's type); a column without any value is written untyped.
Unlike TFX, a cell holding one of the `missing` tokens (`NA`, `null`, ...) is
missing too in a column whose other values are all numbers: R and pandas
write missing numbers so, and TFX would make the column text. In a text
column the tokens stay values (`NA` may be a country code).
A file is read in byte ranges of `RANGE_BYTES` by as many workers when it
holds no quote character (a quoted cell may hold a line break, so only then
does every line break end a row); otherwise each file is one unit of work.
"""

import csv
import hashlib
import io

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from components.csv_check import open_arrow

# TFX's type hierarchy: a column takes the highest type of any of its values.
UNKNOWN, INT, FLOAT, STRING = 0, 1, 2, 3
# A larger file without quotes is read in ranges of this size, in parallel.
RANGE_BYTES = 64 << 20
_INT64_TEXT = r'^[+-]?\d+$'


def header(path: str) -> list[str]:
  """The column names of a CSV file (its first record: a quoted name may hold a line break)."""
  with beam.io.filesystems.FileSystems.open(path) as f:
    return next(csv.reader(io.TextIOWrapper(f, encoding='utf-8-sig', newline='')), [])


def ranges(path: str) -> list[tuple[int, int | None]]:
  """Byte ranges [start, end) of `path` that can be read apart: one (0, None)
  for a small or compressed file, or one holding a quote character."""
  filesystems = beam.io.filesystems.FileSystems
  compression = beam.io.filesystem.CompressionTypes
  if compression.detect_compression_type(path) != compression.UNCOMPRESSED:
    return [(0, None)]
  (match,) = filesystems.match([path])
  size = match.metadata_list[0].size_in_bytes
  if size <= RANGE_BYTES:
    return [(0, None)]
  with filesystems.open(path, compression_type=compression.UNCOMPRESSED) as f:
    while chunk := f.read(16 << 20):
      if b'"' in chunk:
        return [(0, None)]
  starts = range(0, size, RANGE_BYTES)
  return [(start, min(start + RANGE_BYTES, size)) for start in starts]


def _range_text(f, start: int, end: int) -> bytes:
  """The rows that begin in [start, end) of the open file `f` (all its line
  breaks end rows): the row under way at `start` is the range before's."""
  if start:
    f.seek(start - 1)
    f.readline()
  position = f.tell()
  if position >= end:
    return b''
  text = f.read(end - position)
  return text if text.endswith(b'\n') else text + f.readline()


def _blocks(path: str, columns: list[str], byte_range: tuple[int, int | None] = (0, None)):
  """The rows of the file (or of its byte range) in Arrow record batches of
  strings; '' is null, nothing else is."""
  start, end = byte_range
  with beam.io.filesystems.FileSystems.open(path) as f:
    source = f if end is None else _range_text(f, start, end)
    if not source:
      return  # a range within one long row
    if end is not None:
      source = pa.BufferReader(source)
    reader = open_arrow(source, columns, header_row=not start)
    yield from reader


def without_tokens(column: pa.Array, missing: tuple[str, ...]) -> pa.Array:
  """`column` with the cells that hold a missing-value token (spaces aside) made null."""
  if not missing:
    return column
  tokens = pc.is_in(pc.utf8_trim_whitespace(column), value_set=pa.array(missing, pa.string()))
  return pc.if_else(pc.fill_null(tokens, False), pa.scalar(None, pa.string()), column)


def _numeric_text(column: pa.Array) -> pa.Array:
  """What Python's int() and float() accept, in a form Arrow's cast accepts."""
  return pc.replace_substring_regex(pc.utf8_trim_whitespace(column), r'^\+', '')


def value_type(column: pa.Array, missing: tuple[str, ...] = ()) -> int:
  """TFX's inferred type of a column of strings (see `tfx_bsl.coders.csv_decoder`),
  the `missing` tokens set aside: a text column is text whatever they are."""
  values = without_tokens(column, missing).drop_null()
  if not len(values):
    return UNKNOWN
  text = _numeric_text(values)
  try:
    pc.cast(text, pa.int64())
    return INT
  except pa.ArrowInvalid:
    pass
  if pc.all(pc.match_substring_regex(text, _INT64_TEXT)).as_py():
    return STRING  # integers beyond int64: TFX keeps them as text
  try:
    pc.cast(text, pa.float64())
    return FLOAT
  except pa.ArrowInvalid:
    return STRING


def _as_lists(column: pa.Array, kind: int, missing: tuple[str, ...]) -> pa.Array:
  """A column as tf.Example feature values: one list per row, empty where missing."""
  if kind in (INT, FLOAT):
    column = without_tokens(column, missing)
  if kind == UNKNOWN:
    offsets = pa.array([None] * len(column) + [0], pa.int32())  # null: an untyped feature
    return pa.ListArray.from_arrays(offsets, pa.array([], pa.int64()))
  valid = column.is_valid().to_numpy(zero_copy_only=False)
  offsets = np.zeros(len(column) + 1, np.int32)
  np.cumsum(valid, out=offsets[1:])
  values = column.drop_null()
  if kind == INT:
    values = pc.cast(_numeric_text(values), pa.int64())
  elif kind == FLOAT:
    values = pc.cast(pc.cast(_numeric_text(values), pa.float64()), pa.float32(), safe=False)
  else:
    values = values.cast(pa.binary())
  return pa.ListArray.from_arrays(pa.array(offsets), values)


def buckets_of(batch: pa.RecordBatch, total: int) -> np.ndarray:
  """Each row's hash bucket in [0, total): SHA-256 of its cells, as TFX hashes an example."""
  cells = [pc.fill_null(column, '') for column in batch.columns]
  keys = pc.binary_join_element_wise(*cells, '\x1f').cast(pa.binary()).to_pylist()
  return np.fromiter(
    (int.from_bytes(hashlib.sha256(k).digest()[:8], 'big') % total for k in keys),
    np.int64,
    len(keys),
  )


class _InferTypes(beam.CombineFn):
  """Merges the column types of each part of the files by TFX's hierarchy."""

  def create_accumulator(self):
    return {}

  def add_input(self, accumulator, types):
    return self.merge_accumulators([accumulator, types])

  def merge_accumulators(self, accumulators):
    merged = {}
    for types in accumulators:
      for name, kind in types.items():
        merged[name] = max(merged.get(name, UNKNOWN), kind)
    return merged

  def extract_output(self, accumulator):
    return accumulator


def _part_types(part, columns: list[str], missing: tuple[str, ...]) -> dict[str, int]:
  _, path, _, byte_range = part
  types = dict.fromkeys(columns, UNKNOWN)
  for batch in _blocks(path, columns, byte_range):
    for name, column in zip(columns, batch.columns, strict=True):
      if types[name] != STRING:
        types[name] = max(types[name], value_type(column, missing))
  return types


def _parts(indexed_path: tuple[int, str]):
  """A file's units of work: (file index, path, range index, byte range)."""
  file_index, path = indexed_path
  for range_index, byte_range in enumerate(ranges(path)):
    yield file_index, path, range_index, byte_range


class _WritePart(beam.DoFn):
  """Reads a CSV file (or a byte range of one) and writes its examples, each
  to the directory of its split.

  Each block read is written, its rows shuffled, to one gzipped TFRecord
  file per split, named after the CSV file, the range and the block: a
  retried bundle rewrites the same files. Yields (directory, examples written).
  """

  def __init__(self, columns, buckets, destinations, prefix, missing):
    self._columns, self._prefix, self._missing = columns, prefix, missing
    self._buckets = np.asarray(buckets)
    self._destinations = destinations

  def setup(self):
    from tfx_bsl.coders import example_coder

    self._encoder = example_coder.RecordBatchToExamplesEncoder()

  def process(self, part, types: dict[str, int]):
    import tensorflow as tf

    # zlib level 1, not the default 6: a third of the time to write, for
    # files a third bigger that read as fast.
    gzip_fast = tf.io.TFRecordOptions(compression_type='GZIP', compression_level=1)

    file_index, path, range_index, byte_range = part
    for block, batch in enumerate(_blocks(path, self._columns, byte_range)):
      if not batch.num_rows:
        continue
      split = np.searchsorted(self._buckets, buckets_of(batch, self._buckets[-1]), side='right')
      examples = pa.RecordBatch.from_arrays(
        [
          _as_lists(c, types[n], self._missing)
          for n, c in zip(self._columns, batch.columns, strict=True)
        ],
        self._columns,
      )
      # TFX's writer reshuffles every example; rows in a block are shuffled
      # here (the Trainer's input_fn shuffles across blocks).
      order = np.random.default_rng([file_index, range_index, block]).permutation(batch.num_rows)
      for index, directory in enumerate(self._destinations):
        rows = order[split[order] == index]
        if directory is None or not len(rows):
          continue
        part_name = f'{self._prefix}{file_index:05d}-{range_index:05d}-{block:05d}'
        name = f'{directory}/data_tfrecord-{part_name}.gz'
        with tf.io.TFRecordWriter(name, gzip_fast) as out:
          for example in self._encoder.encode(examples.take(pa.array(rows))):
            out.write(example)
        yield directory, len(rows)


class WriteSplitExamples(beam.PTransform):
  """CSV files with one header to gzipped TFRecords of tf.Examples, split by hash bucket.

  `buckets` are cumulative bucket counts, as TFX's: [2, 3] sends two thirds
  of the rows (by hash) to split 0 and one third to split 1. Split i goes to
  `destinations[i]`, or nowhere if None, in files named with `prefix`.
  `missing`: the tokens that mean a missing number (see the module docstring).
  Expands to (directory, examples written) pairs.
  """

  def __init__(
    self,
    files,
    buckets: list[int],
    destinations: list[str | None],
    prefix='',
    missing: tuple[str, ...] = (),
  ):
    super().__init__()
    if len(buckets) != len(destinations):
      raise ValueError(f'{len(buckets)} buckets for {len(destinations)} destinations')
    self._files, self._buckets, self._destinations = list(files), buckets, destinations
    self._prefix, self._missing = prefix, tuple(missing)

  def expand(self, pipeline):
    columns = header(self._files[0])
    for path in self._files[1:]:
      if header(path) != columns:
        raise ValueError(f'{path}: its header differs from that of {self._files[0]}')
    # Reshuffled: the parts of one file go to different workers.
    parts = (
      pipeline
      | 'Files' >> beam.Create(list(enumerate(self._files)))
      | 'Parts' >> beam.FlatMap(_parts)
      | 'Spread' >> beam.Reshuffle()
    )
    types = (
      parts
      | 'PartTypes' >> beam.Map(_part_types, columns, self._missing)
      | 'InferTypes' >> beam.CombineGlobally(_InferTypes())
    )
    return parts | 'Write' >> beam.ParDo(
      _WritePart(columns, self._buckets, self._destinations, self._prefix, self._missing),
      beam.pvalue.AsSingleton(types),
    )
