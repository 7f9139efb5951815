"""Which raw column names the pipeline can carry through Transform.

A name is only ever a dict key or a string in the pipeline, except in one
place: tf.Transform makes a graph placeholder per schema column, named after
the column with its own sanitising (`tensorflow_transform.impl_helper.
_sanitize_scope_name`), and TensorFlow's C++ side then refuses some of those
node names (`IsValidNodeName`: a `>` must start a new name part). TFT 1.15
does not catch this, so such a name passes ExampleGen and StatisticsGen and
fails in Transform with "Node name contains invalid characters". Mirrored
here so `init` and the run's pre-checks can name the column at once;
tests/test_column_names.py checks this mirror against TFT and TF themselves.
"""

import re

_TFT_INVALID_SCOPE_CHAR = re.compile(r'[^A-Za-z0-9_.\-/>]')
_TFT_VALID_SCOPE = re.compile(r'[A-Za-z0-9]*')
_PART = r'[A-Za-z0-9.][A-Za-z0-9_./\-]*'
_TF_NODE_NAME = re.compile(rf'{_PART}(?:>{_PART})*')


def _tft_scope(name: str) -> str:
  scope = _TFT_INVALID_SCOPE_CHAR.sub('_', name)
  return scope if _TFT_VALID_SCOPE.fullmatch(scope) else f'F_{scope}'


def name_problem(name: str) -> str | None:
  """Why Transform cannot take a column called `name`, or None if it can."""
  if not name:
    return 'an empty column name'
  scope = _tft_scope(name)
  # TFT names the placeholder `scope/scope` and its parts `scope/shape_default`.
  if not _TF_NODE_NAME.fullmatch(f'{scope}/{scope}'):
    return (
      f'column {name!r}: TensorFlow refuses it in a graph node name '
      "(a '>' must be followed by a letter, digit or '.'); rename the column"
    )
  return None


def check_names(names, where: str) -> None:
  """Raises ValueError naming every column of `names` Transform cannot take.

  `where` says where the names were read (a file, a schema).
  """
  problems = [p for p in (name_problem(n) for n in names) if p]
  if problems:
    raise ValueError(f'{where}: ' + '; '.join(problems))
