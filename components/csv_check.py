"""Structural checks of CSV input, run before ingest so a bad file gets a precise error.

CsvExampleGen reports a row with the wrong number of cells as a bare
`ValueError` deep inside Beam, with no file or line; it turns a header-only
file into an empty dataset that fails much later. Checking first costs one
pass of Arrow's CSV reader, the ingest's own; only when Arrow objects does
Python's csv reader read the file again, to name the line.
"""

import csv
import glob
import os

import pyarrow as pa
import pyarrow.csv as pcsv

_BLOCK_BYTES = 8 << 20  # Arrow reads a file 8 MB at a time: memory stays flat


class DataError(ValueError):
  """Input data that cannot be ingested; the message names the file and line."""


def check_csv_files(input_base: str, pattern: str = '*') -> list[str]:
  """Checks the CSV files matching `pattern` under `input_base`.

  Returns:
    The sorted list of files checked.

  Raises:
    DataError: if the directory is missing or empty, no file matches, the files
      have different headers, all files are header-only, or a row's number of
      cells differs from its header's.
  """
  if not os.path.isdir(input_base):
    raise DataError(f'data directory {input_base} does not exist')
  files = sorted(f for f in glob.glob(os.path.join(input_base, pattern)) if os.path.isfile(f))
  if not files:
    raise DataError(f'data directory {input_base} has no files matching {pattern!r}')
  header, header_file, rows = None, None, 0
  for path in files:
    file_header, file_rows = _check_file(path, header)
    if header is None:
      header, header_file = file_header, path
    elif file_header != header:
      raise DataError(f'{path} line 1: header differs from the header of {header_file}')
    rows += file_rows
  if rows == 0:
    raise DataError(f'{input_base}: the CSV files have a header but no data rows')
  return files


def open_arrow(f, columns: list[str], header_row: bool) -> pcsv.CSVStreamingReader:
  """Arrow's CSV reader over the open binary file `f`, as the ingest reads:
  every column text, '' null, quoted cells may hold line breaks; the first
  record is skipped if `header_row`."""
  return pcsv.open_csv(
    f,
    # Rows after the names are CSV records; `skip_rows` would count lines.
    read_options=pcsv.ReadOptions(
      block_size=_BLOCK_BYTES, column_names=columns, skip_rows_after_names=int(header_row)
    ),
    parse_options=pcsv.ParseOptions(newlines_in_values=True),
    convert_options=pcsv.ConvertOptions(
      column_types={name: pa.string() for name in columns},
      null_values=[''],
      strings_can_be_null=True,
      quoted_strings_can_be_null=True,
    ),
  )


def _check_file(path: str, header: list[str] | None) -> tuple[list[str], int]:
  """(the file's header, its number of data rows); each row must have the
  header's number of cells (`header`, or the file's own for the first file)."""
  file_header = _header(path)
  if header is not None and file_header != header:
    return file_header, 0  # the caller names both files
  try:
    with open(path, 'rb') as f:
      return file_header, sum(batch.num_rows for batch in open_arrow(f, file_header, True))
  except (pa.ArrowInvalid, UnicodeDecodeError) as e:
    _python_check(path, file_header)
    raise DataError(f'{path}: {e}') from None  # Arrow's objection alone (the ingest's reader)


def _header(path: str) -> list[str]:
  """The file's first record (a quoted name may hold a line break)."""
  try:
    with open(path, newline='', encoding='utf-8-sig') as f:
      file_header = next(csv.reader(f), None)
  except csv.Error as e:
    raise DataError(f'{path} line 1: {e}') from None
  except UnicodeDecodeError:
    raise DataError(f'{path}: not UTF-8 text') from None
  if not file_header or not any(cell.strip() for cell in file_header):
    raise DataError(f'{path}: empty file, expected a CSV header line')
  return file_header


def _python_check(path: str, header: list[str]) -> None:
  """Python's csv reader over the file: raises DataError naming the first bad line."""
  with open(path, newline='', encoding='utf-8-sig') as f:
    reader = csv.reader(f)
    try:
      next(reader, None)
      for row in reader:
        if row and len(row) != len(header):  # a blank line is skipped, as by the ingest
          raise DataError(
            f'{path} line {reader.line_num}: {len(row)} cells, the header has {len(header)}'
          )
    except csv.Error as e:
      raise DataError(f'{path} line {reader.line_num}: {e}') from None
    except UnicodeDecodeError:
      raise DataError(f'{path}: not UTF-8 text') from None
