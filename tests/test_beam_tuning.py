"""The memo of Beam's DoFn inspection: Beam's answers, asked once per instance."""

import sys
import types

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import userstate
from apache_beam.transforms.userstate import BagStateSpec

from components import beam_tuning


class _Plain(beam.DoFn):
  def process(self, element):
    yield element


class _Stateful(beam.DoFn):
  SEEN = BagStateSpec('seen', beam.coders.VarIntCoder())

  def process(self, element, seen=beam.DoFn.StateParam(SEEN)):  # noqa: B008 (Beam's API)
    key, value = element
    seen.add(value)
    yield key, sorted(seen.read())


class _BoundElsewhere(beam.DoFn):
  """A DoFn holding a bound method of another object: its answer is its own."""

  def __init__(self, other):
    super().__init__()
    self.on_timer = other.process


def test_the_memo_gives_beams_answers_and_asks_once_per_class_or_instance():
  calls = []

  def inspect(dofn):
    calls.append(dofn)
    return userstate.get_dofn_specs(dofn)

  specs = beam_tuning.memoized(inspect)
  plain, stateful = _Plain(), _Stateful()
  for dofn in (plain, stateful, plain, stateful):
    assert specs(dofn) == userstate.get_dofn_specs(dofn)
  assert calls == [plain, stateful]
  # Another instance of a class whose methods are all the class's: its answer.
  assert specs(_Plain()) == (set(), set()) and specs(_Stateful())[0] and len(calls) == 2
  # A Map's DoFn keeps its function as a plain attribute: one answer a class.
  mapped = [beam.Map(len).dofn, beam.Map(str).dofn]
  assert [specs(d) for d in mapped] == [userstate.get_dofn_specs(d) for d in mapped]
  assert len(calls) == 3
  # A bound method on the instance: asked per instance.
  elsewhere = [_BoundElsewhere(_Stateful()), _BoundElsewhere(_Plain())]
  assert [specs(d) for d in elsewhere] == [userstate.get_dofn_specs(d) for d in elsewhere]
  assert specs(elsewhere[0])[0] and not specs(elsewhere[1])[0]
  assert len(calls) == 5


def test_a_stateful_dofn_still_runs_with_the_memos_installed():
  beam_tuning.install()
  beam_tuning.install()  # once per process
  assert getattr(userstate.get_dofn_specs, beam_tuning._MEMO_ATTRIBUTE)
  assert getattr(beam.options.pipeline_options.PipelineOptions.view_as, beam_tuning._MEMO_ATTRIBUTE)
  with beam.Pipeline() as pipeline:
    out = (
      pipeline
      | beam.Create([('a', 1), ('a', 2), ('b', 3)])
      | beam.ParDo(_Stateful())
      | beam.MapTuple(lambda key, seen: (key, len(seen)))
    )
    assert_that(out, equal_to([('a', 1), ('a', 2), ('b', 1)]))


def test_module_globals_are_listed_again_when_modules_come_or_go(monkeypatch):
  calls = []

  def iterate():
    calls.append(1)
    return iter([vars(m) for m in list(sys.modules.values())[:3]])

  listing = beam_tuning.modules_globals(iterate)
  first = list(listing())
  assert list(listing()) == first and len(calls) == 1
  monkeypatch.setitem(sys.modules, 'a_module_loaded_later', types.ModuleType('later'))
  list(listing())
  assert len(calls) == 2


def test_state_cache_weights_are_objsizes_with_the_memo_installed():
  from apache_beam.runners.worker import statecache

  values = [{'a': [1.0] * 100}, ['x' * 1000, b'y'], (1, 2, 3)]
  before = [statecache.get_deep_size(v) for v in values]
  beam_tuning.install()
  from objsize import traverse

  assert getattr(traverse._iter_modules_globals, beam_tuning._MEMO_ATTRIBUTE)
  assert [statecache.get_deep_size(v) for v in values] == before


def test_an_options_view_is_made_once_and_reads_and_writes_the_shared_values():
  from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    StandardOptions,
    TypeOptions,
  )

  beams = getattr(PipelineOptions.view_as, '__wrapped__', PipelineOptions.view_as)
  made = []

  def view_as(options, cls):
    made.append(cls)
    return beams(options, cls)

  view_as_once = beam_tuning.views(view_as)
  options = PipelineOptions(['--runner=DirectRunner', '--no_pipeline_type_check'])
  first = view_as_once(options, TypeOptions)
  assert view_as_once(options, TypeOptions) is first and first.pipeline_type_check is False
  assert made == [TypeOptions]
  assert view_as_once(options, StandardOptions).runner == 'DirectRunner'
  # A value set through one view is what every other view and the options read.
  view_as_once(options, DirectOptions).direct_num_workers = 3
  assert options.view_as(DirectOptions).direct_num_workers == 3
  assert view_as_once(options, DirectOptions).direct_num_workers == 3
  # Other flags, or other options: another view.
  other = PipelineOptions([])
  assert view_as_once(other, TypeOptions) is not first
  assert view_as_once(other, TypeOptions).pipeline_type_check is True
  options._flags = ['--pipeline_type_check']
  assert view_as_once(options, TypeOptions) is not first
