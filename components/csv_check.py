"""Structural checks of CSV input, run before ingest so a bad file gets a precise error.

CsvExampleGen reports a row with the wrong number of cells as a bare
`ValueError` deep inside Beam, with no file or line; it turns a header-only
file into an empty dataset that fails much later. Checking first is cheap
(one pass of Python's csv reader) and names the file and line.
"""

import csv
import glob
import os


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


def _check_file(path: str, header: list[str] | None) -> tuple[list[str], int]:
  """(the file's header, its number of data rows); each row must have the
  header's number of cells (`header`, or the file's own for the first file)."""
  with open(path, newline='', encoding='utf-8-sig') as f:
    reader = csv.reader(f)
    try:
      file_header = next(reader, None)
      if not file_header or not any(cell.strip() for cell in file_header):
        raise DataError(f'{path}: empty file, expected a CSV header line')
      if header is not None and file_header != header:
        return file_header, 0  # the caller names both files
      rows = 0
      for row in reader:
        if not row:
          continue  # blank line; CsvExampleGen skips these too
        if len(row) != len(file_header):
          raise DataError(
            f'{path} line {reader.line_num}: {len(row)} cells, the header has {len(file_header)}'
          )
        rows += 1
    except csv.Error as e:
      raise DataError(f'{path} line {reader.line_num}: {e}') from None
    except UnicodeDecodeError:
      raise DataError(f'{path}: not UTF-8 text') from None
  return file_header, rows
