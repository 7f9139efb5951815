"""The CSV check names the file and line of malformed input."""

import pytest

from components.csv_check import DataError, check_csv_files

HEADER = 'a,b,c\n'


def test_good_files_pass(tmp_path):
  (tmp_path / 'x.csv').write_text(HEADER + '1,2,3\n"4,5",6,\n')
  assert check_csv_files(str(tmp_path)) == [str(tmp_path / 'x.csv')]


def test_missing_directory(tmp_path):
  with pytest.raises(DataError, match='does not exist'):
    check_csv_files(str(tmp_path / 'nope'))


def test_empty_directory(tmp_path):
  with pytest.raises(DataError, match='has no files'):
    check_csv_files(str(tmp_path))


def test_header_only(tmp_path):
  (tmp_path / 'x.csv').write_text(HEADER)
  with pytest.raises(DataError, match='header but no data rows'):
    check_csv_files(str(tmp_path))


def test_empty_file(tmp_path):
  (tmp_path / 'x.csv').write_text('')
  with pytest.raises(DataError, match=r'x\.csv: empty file'):
    check_csv_files(str(tmp_path))


def test_wrong_number_of_cells_names_file_and_line(tmp_path):
  (tmp_path / 'x.csv').write_text(HEADER + '1,2,3\n1,2,3\n1,2\n')
  with pytest.raises(DataError, match=r'x\.csv line 4: 2 cells, the header has 3'):
    check_csv_files(str(tmp_path))


def test_different_headers(tmp_path):
  (tmp_path / 'a.csv').write_text(HEADER + '1,2,3\n')
  (tmp_path / 'b.csv').write_text('a,b,d\n1,2,3\n')
  with pytest.raises(DataError, match=r'b\.csv line 1: header differs'):
    check_csv_files(str(tmp_path))


def test_bad_text_far_into_a_file_is_named(tmp_path):
  rows = ''.join(f'{i},{i},{i}\n' for i in range(5000))
  (tmp_path / 'x.csv').write_bytes((HEADER + rows).encode() + b'1,\xff\xfe,3\n')
  with pytest.raises(DataError, match=r'x\.csv: not UTF-8 text'):
    check_csv_files(str(tmp_path))
  (tmp_path / 'x.csv').write_text(HEADER + rows + '1,2,3,4\n' + rows)
  with pytest.raises(DataError, match=r'x\.csv line 5002: 4 cells, the header has 3'):
    check_csv_files(str(tmp_path))


def test_quoted_line_breaks_and_blank_lines_are_rows_as_the_ingest_reads_them(tmp_path):
  (tmp_path / 'x.csv').write_text(HEADER + '"a\nb",2,3\n\n4,5,6\r\n')
  assert check_csv_files(str(tmp_path)) == [str(tmp_path / 'x.csv')]
