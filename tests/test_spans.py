"""Span resolution (TFX's patterns) and the span-window ExampleGen, on tiny files through Beam."""

import json

import pytest

from components import spans
from components.csv_check import DataError
from components.example_gen import (
  PREVIOUS,
  SPANS_PROPERTY,
  SpanCsvExampleGen,
  SpanCsvExampleGenExecutor,
  check_spans,
)


def write_span(root, folder, rows, start=0):
  path = root / folder
  path.mkdir(parents=True, exist_ok=True)
  lines = ['id,x'] + [f'{start + i},{(start + i) % 7}' for i in range(rows)]
  (path / 'data.csv').write_text('\n'.join(lines) + '\n')


def test_a_flat_folder_is_one_span_0(tmp_path):
  write_span(tmp_path, '.', 5)
  chosen = spans.select(str(tmp_path), '*', window=3)
  assert [s.number for s in chosen.window] == [0] and chosen.previous is None
  assert chosen.newest.pattern == '*'


def test_newest_window_and_previous(tmp_path):
  for n in (1, 2, 3, 10):
    write_span(tmp_path, f'span-{n}', 3)
  chosen = spans.select(str(tmp_path), 'span-{SPAN}/*', window=2)
  assert [s.number for s in chosen.window] == [3, 10]  # numeric order, not text
  assert [s.pattern for s in chosen.window] == ['span-3/*', 'span-10/*']
  assert chosen.previous.number == 3
  one = spans.select(str(tmp_path), 'span-{SPAN}/*', window=1)
  assert [s.number for s in one.window] == [10] and one.previous.number == 3
  assert spans.select(str(tmp_path), 'span-{SPAN}/*', window=9).window[0].number == 1


def test_newest_is_capped_by_the_drivers_choice(tmp_path):
  for n in (1, 2, 3):
    write_span(tmp_path, f'span-{n}', 3)
  chosen = spans.select(str(tmp_path), 'span-{SPAN}/*', window=1, newest=2)
  assert chosen.newest.number == 2 and chosen.previous.number == 1
  with pytest.raises(ValueError, match='span 7 is no longer'):
    spans.select(str(tmp_path), 'span-{SPAN}/*', window=1, newest=7)


def test_dated_folders_and_versions(tmp_path):
  write_span(tmp_path, '2026-11-20/v1', 3)
  write_span(tmp_path, '2026-11-21/v1', 3)
  write_span(tmp_path, '2026-11-21/v2', 3)
  chosen = spans.select(str(tmp_path), '{YYYY}-{MM}-{DD}/v{VERSION}/*', window=1)
  assert chosen.newest.pattern == '2026-11-21/v2/*' and chosen.newest.version == 2
  assert chosen.previous.pattern == '2026-11-20/v1/*'
  assert chosen.newest.number - chosen.previous.number == 1  # days since the epoch


def test_the_fingerprint_changes_with_any_file_read(tmp_path):
  for n in (1, 2):
    write_span(tmp_path, f'span-{n}', 3)
  before = spans.select(str(tmp_path), 'span-{SPAN}/*', window=1).fingerprint
  write_span(tmp_path, 'span-1', 4)  # the previous span, compared for drift
  assert spans.select(str(tmp_path), 'span-{SPAN}/*', window=1).fingerprint != before


def test_no_matching_span_and_bad_patterns(tmp_path):
  write_span(tmp_path, 'other', 3)
  with pytest.raises(DataError, match=r"matches the span pattern 'span-\{SPAN\}/\*'"):
    check_spans(str(tmp_path), 'span-{SPAN}/*', 1)
  with pytest.raises(ValueError, match='Only one'):
    spans.has_span_spec('{SPAN}/{SPAN}')
  write_span(tmp_path, 'span-1', 0)
  with pytest.raises(DataError, match='header but no data rows'):
    check_spans(str(tmp_path), 'span-{SPAN}/*', 1)


def _read_split(examples, split):
  import tensorflow as tf
  from tfx.types import artifact_utils

  ids = []
  files = tf.io.gfile.glob(artifact_utils.get_split_uri([examples], split) + '/*')
  for record in tf.data.TFRecordDataset(files, compression_type='GZIP'):
    example = tf.train.Example.FromString(record.numpy())
    ids.append(example.features.feature['id'].int64_list.value[0])
  return sorted(ids)


def test_the_executor_writes_the_window_the_newest_eval_and_the_previous_eval(tmp_path):
  from tfx.types import artifact_utils, standard_artifacts

  data = tmp_path / 'data'
  for n in (1, 2, 3):
    write_span(data, f'span-{n}', 60, start=n * 1000)
  component = SpanCsvExampleGen(input_base=str(data), pattern='span-{SPAN}/*', window=2)
  exec_properties = dict(component.exec_properties.items())
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / 'out')
  SpanCsvExampleGenExecutor().Do({}, {'examples': [examples]}, exec_properties)

  assert artifact_utils.decode_split_names(examples.split_names) == ['train', 'eval', PREVIOUS]
  assert examples.span == 3
  assert json.loads(examples.get_string_custom_property(SPANS_PROPERTY)) == {
    'train': [2, 3],
    'eval': 3,
    'previous': 2,
  }
  train, eval_, previous = (_read_split(examples, s) for s in ('train', 'eval', PREVIOUS))
  assert {i // 1000 for i in train} == {2, 3}
  assert {i // 1000 for i in eval_} == {3} and {i // 1000 for i in previous} == {2}
  # Span 3's rows are split once: train and eval share none and lose none.
  assert not set(train) & set(eval_)
  assert len([i for i in train if i // 1000 == 3]) + len(eval_) == 60
  # The previous span's eval share is the part of it that was not trained on.
  assert not set(train) & set(previous)
  assert len([i for i in train if i // 1000 == 2]) + len(previous) == 60


def test_preflight_reads_a_flat_folders_rows_once(tmp_path, monkeypatch):
  """The CSV check is a pass over every row: a flat folder's files are
  checked before TFX is imported, and not again for its one span."""
  from components import csv_check, example_gen
  from pipeline.config import load_config
  from pipeline.service import checks

  write_span(tmp_path, 'flat', 3)
  calls = []

  def counted(input_base, pattern='*'):
    calls.append(pattern)
    return csv_check.check_csv_files(input_base, pattern)

  monkeypatch.setattr(checks, 'check_csv_files', counted)
  monkeypatch.setattr(example_gen, 'check_csv_files', counted)
  config = load_config(overrides=[f'data_root={tmp_path / "flat"}'])
  checks.preflight(config)
  assert calls == ['*']
  calls.clear()
  write_span(tmp_path, 'span-1', 3)
  write_span(tmp_path, 'span-2', 3)
  checks.preflight(load_config(overrides=[f'data_root={tmp_path}', 'spans.pattern=span-{SPAN}/*']))
  assert sorted(calls) == ['span-1/*', 'span-2/*']
