"""Which data drops (spans) a run reads: the newest, a rolling window, and the one before.

TFX's ExampleGen driver resolves `{SPAN}` (or `{YYYY}-{MM}-{DD}`, with an
optional `{VERSION}`) to the newest span only, and the Kubeflow v2 backend
does not run that driver at all. This module uses TFX's own pattern
helpers to list every span and resolve each one, so the ExampleGen driver
and executor agree on the same spans on every orchestrator.
"""

import dataclasses

from tfx.components.example_gen import utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2, range_config_pb2

# The split every span pattern is resolved as (ExampleGen's single input split).
INPUT_SPLIT = 'single_split'


@dataclasses.dataclass(frozen=True)
class Span:
  number: int  # 0 when the pattern has no span spec
  version: int | None
  pattern: str  # the split pattern with the span filled in, relative to the input base
  fingerprint: str  # TFX's fingerprint of its files (names, sizes, modification times)


@dataclasses.dataclass(frozen=True)
class Selection:
  window: tuple[Span, ...]  # oldest first; the last one is the newest span
  previous: Span | None  # the span before the newest, compared with it for drift

  @property
  def newest(self) -> Span:
    return self.window[-1]

  @property
  def fingerprint(self) -> str:
    """Changes when any file of any span read (window or previous) changes."""
    spans = self.window + ((self.previous,) if self.previous else ())
    return '\n'.join(f'span {s.number}: {s.fingerprint}' for s in spans)


def has_span_spec(pattern: str) -> bool:
  is_span, is_date, _ = utils.verify_split_pattern_specs(
    example_gen_pb2.Input.Split(name=INPUT_SPLIT, pattern=pattern)
  )
  return is_span or is_date


def span_numbers(input_base: str, pattern: str) -> list[int]:
  """Every span number found under `input_base` for `pattern`, ascending."""
  split = example_gen_pb2.Input.Split(name=INPUT_SPLIT, pattern=pattern)
  is_span, is_date, is_version = utils.verify_split_pattern_specs(split)
  if not (is_span or is_date):
    return [0]
  # TFX's own glob and regex for the pattern: the same matching its driver does.
  glob, regex = utils._create_matching_glob_and_regex(  # pylint: disable=protected-access
    input_base, split, is_span, is_date, is_version, None
  )
  numbers = set()
  for path in fileio.glob(glob):
    _, number, _, _ = utils._find_matched_span_version_from_path(  # pylint: disable=protected-access
      path, regex, is_span, is_date, is_version
    )
    numbers.add(number)
  return sorted(numbers)


def resolve_span(input_base: str, pattern: str, number: int) -> Span:
  """Span `number` (its newest version), with its pattern filled in."""
  split = example_gen_pb2.Input.Split(name=INPUT_SPLIT, pattern=pattern)
  range_config = None
  if has_span_spec(pattern):
    range_config = range_config_pb2.RangeConfig(
      static_range=range_config_pb2.StaticRange(start_span_number=number, end_span_number=number)
    )
  fingerprint, span, version = utils.calculate_splits_fingerprint_span_and_version(
    input_base, [split], range_config
  )
  return Span(span, version, split.pattern, fingerprint)


def select(input_base: str, pattern: str, window: int, newest: int | None = None) -> Selection:
  """The `window` newest spans (at most `newest`, if given) and the span before the newest.

  Raises:
    ValueError: no file under `input_base` matches `pattern`, or span `newest` is gone.
  """
  if window < 1:
    raise ValueError(f'span window {window}: must be at least 1')
  numbers = span_numbers(input_base, pattern)
  if has_span_spec(pattern) and not numbers:
    raise ValueError(f'no data under {input_base} matches the span pattern {pattern!r}')
  if newest is not None and has_span_spec(pattern):
    if newest not in numbers:
      raise ValueError(f'span {newest} is no longer under {input_base} ({pattern!r})')
    numbers = [n for n in numbers if n <= newest]
  chosen = [resolve_span(input_base, pattern, n) for n in numbers[-window:]]
  previous = resolve_span(input_base, pattern, numbers[-2]) if len(numbers) > 1 else None
  return Selection(tuple(chosen), previous)
