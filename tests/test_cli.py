"""The CLI's checks before a run, and how errors reach the console."""

import pytest

from pipeline import cli, console
from pipeline.record import EXIT_LOCKED, EXIT_USAGE, Outcome
from pipeline.service import lifecycle


class CombinerError(Exception):
  pass


def _tfma_like_error():
  """An error raised as TFMA and Beam raise them: wrapping the root cause."""
  try:
    try:
      raise ValueError('label must be within [0, 1]: got 23.5')
    except ValueError as e:
      raise RuntimeError('add_input failed on "<_Combiner object at 0x7f>" with inputs: ...') from e
  except RuntimeError as e:
    try:
      raise RuntimeError(str(e) + " [while running 'ComputeMetrics']")
    except RuntimeError as outer:
      return outer


def test_error_text_names_the_root_cause():
  text = console.error_text(_tfma_like_error())
  assert text.startswith('ValueError: label must be within [0, 1]: got 23.5')
  assert 'object at 0x' not in text.split('(raised as')[0]


def test_error_text_of_a_plain_error_is_its_message():
  assert (
    console.error_text(ValueError('data directory x does not exist'))
    == 'data directory x does not exist'
  )
  assert console.error_text(KeyError('k')) == "KeyError: 'k'"


def test_error_text_of_an_error_raised_from_none_is_its_message():
  try:
    try:
      float('abc')
    except ValueError:
      raise ValueError('t.csv line 2: column age holds abc, expected a number') from None
  except ValueError as e:
    assert console.error_text(e) == 't.csv line 2: column age holds abc, expected a number'


@pytest.mark.parametrize(
  'override, key, needle',
  [
    ('task.label=tip_amount', 'task.label', "'tip_amount' is not a column"),
    ('evaluator.slice_features=[hour]', 'evaluator.slice_features', "'hour' is not a column"),
    ('module=json', 'module', 'has no function preprocessing_fn'),
    ('data_root=/nowhere/data', 'data_root', '/nowhere/data does not exist'),
    ('data_root=/etc/hostname', 'data_root', '/etc/hostname is not a folder'),
  ],
)
def test_run_refuses_a_config_that_does_not_fit_the_schema_or_module(
  tmp_path, capsys, override, key, needle
):
  code = cli.main(['run', '--set', f'output_root={tmp_path}', '--set', override])
  err = capsys.readouterr().err
  assert code == 2
  assert f"config key '{key}'" in err and needle in err
  assert err.strip().count('\n') == 0
  assert not list((tmp_path / 'runs').iterdir())  # nothing ran, nothing was kept


def test_run_refuses_a_schema_column_transform_cannot_take(tmp_path, capsys):
  import pathlib

  from pipeline import config as config_lib

  schema = pathlib.Path(config_lib.load_config().schema_file).read_text()
  bad = tmp_path / 'schema.pbtxt'
  bad.write_text(schema.replace('name: "company"', 'name: "<i>company</i>"'))
  code = cli.main(
    ['run', '--set', f'output_root={tmp_path / "out"}', '--set', f'schema_file={bad}']
  )
  err = capsys.readouterr().err
  assert code == 2 and err.strip().count('\n') == 0
  assert f"config key 'schema_file': {bad}: column '<i>company</i>'" in err


def _collected(pushed=False, **states):
  names = ('CsvExampleGen', 'ExampleValidator', 'Trainer', 'Evaluator', 'Pusher')
  return {
    'components': [{'name': n, 'state': states.get(n, 'cached')} for n in names],
    'pushed_path': '/serving/2' if pushed else None,
  }


@pytest.mark.parametrize(
  'status, collected, outcome, code',
  [
    ('succeeded', _collected(pushed=True, Trainer='executed'), 'pushed', 0),
    ('succeeded', _collected(Trainer='executed'), 'not_pushed', 3),
    ('succeeded', _collected(), 'nothing_new', 4),
    ('succeeded', _collected(Trainer='cached', Pusher='executed'), 'nothing_new', 4),
    ('succeeded', _collected(Evaluator='executed', Pusher='executed'), 'not_pushed', 3),
    ('failed', _collected(ExampleValidator='failed', Trainer='skipped'), 'data_refused', 5),
    ('failed', _collected(Trainer='failed'), 'failed', 1),
    ('failed', {'components': [], 'pushed_path': None}, 'failed', 1),
  ],
)
def test_each_outcome_has_its_own_exit_code(status, collected, outcome, code):
  assert lifecycle.outcome(status, collected) == outcome
  assert Outcome(outcome).exit_code == code
  runs = [o for o in Outcome if o is not Outcome.ROLLBACK]
  assert len({o.exit_code for o in runs} | {EXIT_USAGE, EXIT_LOCKED}) == 7


def test_help_lists_the_exit_codes(capsys):
  for argv in (['--help'], ['run', '--help']):
    with pytest.raises(SystemExit):
      cli.main(argv)
    out = capsys.readouterr().out
    assert (
      'exit codes of `run`:' in out and '  4   nothing new' in out and '  75  another run' in out
    )


@pytest.mark.parametrize('content', [b'\xff\xfe\x00\x01binary', b'feature { name: '])
def test_a_schema_file_that_is_no_schema_is_one_line_naming_key_and_file(tmp_path, capsys, content):
  schema = tmp_path / 'schema.pbtxt'
  schema.write_bytes(content)
  out = tmp_path / 'out'
  code = cli.main(['run', '--set', f'output_root={out}', '--set', f'schema_file={schema}'])
  err = capsys.readouterr().err
  assert code == 2
  assert f"config key 'schema_file': {schema} is not a schema" in err
  assert err.strip().count('\n') == 0


def test_an_output_root_that_is_a_file_is_one_line_exit_2(tmp_path, capsys):
  taken = tmp_path / 'outputs'
  taken.write_text('not a folder')
  code = cli.main(['run', '--set', f'output_root={taken}'])
  err = capsys.readouterr().err
  assert code == 2 and "'output_root'" in err and 'is a file, not a folder' in err
  assert err.strip().count('\n') == 0 and taken.read_text() == 'not a folder'


def test_the_run_console_is_never_silent_for_long(monkeypatch, capsys):
  """A component that runs long with nothing to say gets a line every
  HEARTBEAT_S seconds; a quick one gets one line, and nothing after it ends."""
  import time

  monkeypatch.setattr(console, 'HEARTBEAT_S', 1.5)
  run = console.RunConsole(None)
  run.start('Quick')
  run.finish('Quick', 'cached', 0.0)
  run.start('Transform')
  time.sleep(4.2)
  run.finish('Transform', 'executed', 4.2)
  time.sleep(2.2)
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].startswith('  Quick') and 'cached' in lines[0]
  assert lines[1].startswith('  Transform') and 'running' in lines[1]
  beats = [line for line in lines if 'still running' in line]
  assert beats and all(b.startswith('    Transform still running (') for b in beats)
  assert lines[-1].startswith('  Transform') and 'executed' in lines[-1]


def test_a_field_the_record_cannot_read_is_left_out_not_the_record():
  """A component writing a field the record does not know must not lose the
  record of a run that pushed: the decision and paths are kept, the rest named."""
  summary = lifecycle.record(
    run_id='r1',
    status='succeeded',
    outcome='pushed',
    components=[{'name': 'Pusher', 'state': 'executed', 'seconds': 0.1}],
    pushed_path='/s/7',
    pushed_version=7,
    drift={'measurements': [], 'something_new': 1},
  )
  assert (summary.outcome, summary.pushed_version, summary.pushed_path) == ('pushed', 7, '/s/7')
  assert summary.drift is None and 'drift.something_new' in summary.error
