"""A memo for Beam's inspection of a DoFn's state and timers, installed by the runners.

Beam 2.67 answers "is this DoFn stateful?" (`userstate.get_dofn_specs`) by
taking `inspect.signature` of every method of the DoFn, every time it is
asked: when the transform is built, when the pipeline is translated to its
proto, when the DirectRunner visits it, and per bundle processor; the same
instance up to five times. On a pipeline run over a 3,000-row taxi sample
those repeats were about 7 s of 56 (Transform 21.5 -> 16.5 s, StatisticsGen
6.0 -> 4.4 s, the Evaluator 10.8 -> 9.7 s). The answer depends only on the
instance's bound methods (`types.MethodType` attributes), so it is kept per
instance. Each bundle processor unpickles its own instances, so a memo per
instance still asked again for every new one (about 1 s of a 3,000-row run);
where every bound method comes from the class (no bound method stored on
the instance, no `__getattr__`), the answer is kept per class.

Beam also weighs every value its state cache loads (side inputs, once per
bundle) with `objsize.get_deep_size`, which lists the globals of every
loaded module each time, so as not to count them: with TF, TFX and Beam
loaded, 8,000 modules, about 7 ms a call and 3 s of a 24 s Transform on the
bundled data. The list is kept until the number of loaded modules changes;
it only decides what the weights leave out, and the weights only when the
cache evicts.

And Beam asks the pipeline's options for a `TypeOptions` view twice for every
transform it applies; each view builds an argparse parser of the class's
options and parses the flags again, about 5 ms: 2 s of CPU of a pipeline run
over a 3,000-row sample, half of it in Transform's pipeline construction. A
view only reads and writes the options' shared values, so one view per
options object, class and flags is the same view.
"""

import sys
import types
import weakref

_MEMO_ATTRIBUTE = '_memoized_per_instance'


def install() -> None:
  """Replaces `apache_beam.transforms.userstate.get_dofn_specs` and objsize's
  listing of module globals by memos of them (once per process; their
  callers call them through their modules)."""
  from apache_beam.transforms import userstate
  from objsize import traverse

  if not getattr(userstate.get_dofn_specs, _MEMO_ATTRIBUTE, False):
    userstate.get_dofn_specs = memoized(userstate.get_dofn_specs)
  if not getattr(traverse._iter_modules_globals, _MEMO_ATTRIBUTE, False):
    traverse._iter_modules_globals = modules_globals(traverse._iter_modules_globals)
  from apache_beam.options.pipeline_options import PipelineOptions

  if not getattr(PipelineOptions.view_as, _MEMO_ATTRIBUTE, False):
    PipelineOptions.view_as = views(PipelineOptions.view_as)


def modules_globals(iterate):
  """`iterate()` (the globals of every loaded module), listed again only when
  the number of loaded modules changes."""
  memo = {'modules': -1, 'globals': []}

  def iter_modules_globals():
    modules = len(sys.modules)
    if modules != memo['modules']:
      memo['globals'] = list(iterate())
      memo['modules'] = modules
    return iter(memo['globals'])

  setattr(iter_modules_globals, _MEMO_ATTRIBUTE, True)
  return iter_modules_globals


def views(view_as):
  """`options.view_as(cls)`, made once per live options object, class, flags
  and shared values."""
  known: dict[tuple, tuple[weakref.ref, object]] = {}

  def cached_view_as(options, cls):
    flags = options._flags
    key = (id(options), cls, tuple(flags) if flags is not None else None, id(options._all_options))
    entry = known.get(key)
    if entry is not None and entry[0]() is options:
      return entry[1]
    view = view_as(options, cls)
    reference = weakref.ref(options, lambda _: known.pop(key, None))
    known[key] = (reference, view)
    return view

  setattr(cached_view_as, _MEMO_ATTRIBUTE, True)
  cached_view_as.__wrapped__ = view_as
  return cached_view_as


def _methods_from_class(dofn) -> bool:
  """Whether every bound method of `dofn` is its class's."""
  cls = type(dofn)
  if hasattr(cls, '__getattr__') or cls.__getattribute__ is not object.__getattribute__:
    return False
  attributes = getattr(dofn, '__dict__', None)
  if attributes is None or hasattr(cls, '__slots__'):
    return False
  return not any(isinstance(value, types.MethodType) for value in attributes.values())


def memoized(inspect_specs):
  """`inspect_specs(dofn)`, computed once per DoFn class whose bound methods
  are all the class's, else once per DoFn instance that is alive."""
  known: dict[int, tuple[weakref.ref, object]] = {}
  per_class: dict[type, object] = {}

  def get_dofn_specs(dofn):
    from_class = _methods_from_class(dofn)
    if from_class and type(dofn) in per_class:
      return per_class[type(dofn)]
    key = id(dofn)
    entry = known.get(key)
    if entry is not None and entry[0]() is dofn:
      return entry[1]
    specs = inspect_specs(dofn)
    if from_class:
      per_class[type(dofn)] = specs
      return specs
    try:
      reference = weakref.ref(dofn, lambda _: known.pop(key, None))
    except TypeError:  # an object that takes no weak reference is not remembered
      return specs
    known[key] = (reference, specs)
    return specs

  setattr(get_dofn_specs, _MEMO_ATTRIBUTE, True)
  return get_dofn_specs
