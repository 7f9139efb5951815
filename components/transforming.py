"""TFX's Transform, tracing the user's preprocessing_fn less often.

TFX 1.15's Transform executor traces the preprocessing_fn into a fresh graph
five times in a run: twice for the same `get_analyze_input_columns` (once to
fail fast, once again in `_RunBeamImpl`), once for
`get_transform_input_columns`, once for the analyzer cache's entry keys (with
a whole analysis graph built on it) and once to analyse. Each trace creates
every op again (about 1,000 for the bundled preprocessing_fn, a third of a
second on a quiet core, more beside StatisticsGen); at 1x the repeated ones
were about a fifth of Transform.

Here the inspections share one trace (they only read its graph; walking it
again is cheap); with the analyzer cache
disabled, its entry keys (used then only to estimate a stage count for a
warning about the cache) are not computed. Two traces are left: the
inspections' and the analysis's, which builds on its own graph.
"""

import contextlib
import threading

import tensorflow_transform as tft
from tensorflow_transform import impl_helper
from tensorflow_transform.beam import analysis_graph_builder
from tfx.components import Transform
from tfx.components.transform import executor as transform_executor
from tfx.components.transform import executor_utils
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs

_INSPECTIONS = ('get_analyze_input_columns', 'get_transform_input_columns')
_CACHE_KEYS = 'get_analysis_cache_entry_keys'
_TRACE = 'trace_preprocessing_function'
# The patched module attributes are process-wide: one executor at a time.
_PATCH_LOCK = threading.Lock()


def _spec_key(specs) -> tuple:
  return tuple(sorted((name, repr(spec)) for name, spec in specs.items()))


class _Inspected:
  """The preprocessing_fn this executor resolved, and its inspections' trace."""

  def __init__(self):
    self.preprocessing_fn = None
    self.graphs = {}
    self.inspecting = False

  def inspecting_with(self, function):
    """`function` (a TFT inspection) with the shared trace for this preprocessing_fn."""

    def inspect(fn, specs, force_tf_compat_v1=False):
      self.inspecting = fn is self.preprocessing_fn
      try:
        return function(fn, specs, force_tf_compat_v1=force_tf_compat_v1)
      finally:
        self.inspecting = False

    return inspect

  def shared_trace(self, trace):
    """One traced graph for every inspection: they only read it. Analysis,
    which builds on its graph, traces its own."""

    def trace_preprocessing_function(fn, input_specs, use_tf_compat_v1, base_temp_dir=None):
      if not self.inspecting:
        return trace(fn, input_specs, use_tf_compat_v1, base_temp_dir)
      key = (_spec_key(input_specs), use_tf_compat_v1)
      if key not in self.graphs:
        self.graphs[key] = trace(fn, input_specs, use_tf_compat_v1, base_temp_dir)
      return self.graphs[key]

    return trace_preprocessing_function

  def without_cache_keys(self, function):
    def cache_entry_keys(fn, *args, **kwargs):
      return [] if fn is self.preprocessing_fn else function(fn, *args, **kwargs)

    return cache_entry_keys


@contextlib.contextmanager
def _traced_less(cache_disabled: bool):
  inspected = _Inspected()
  with _PATCH_LOCK:
    patches = [(tft, name, inspected.inspecting_with(getattr(tft, name))) for name in _INSPECTIONS]
    patches.append((impl_helper, _TRACE, inspected.shared_trace(getattr(impl_helper, _TRACE))))
    if cache_disabled:
      patches.append(
        (
          analysis_graph_builder,
          _CACHE_KEYS,
          inspected.without_cache_keys(getattr(analysis_graph_builder, _CACHE_KEYS)),
        )
      )
    originals = [(module, name, getattr(module, name)) for module, name, _ in patches]
    try:
      for module, name, replacement in patches:
        setattr(module, name, replacement)
      yield inspected
    finally:
      for module, name, original in originals:
        setattr(module, name, original)


class TraceOnceTransformExecutor(transform_executor.Executor):
  """Transform's executor, inspecting the preprocessing_fn once (module docstring)."""

  def Do(self, input_dict, output_dict, exec_properties):
    cache_disabled = not (
      executor_utils.GetCachePathEntry(standard_component_specs.ANALYZER_CACHE_KEY, input_dict)
      or executor_utils.GetCachePathEntry(
        standard_component_specs.UPDATED_ANALYZER_CACHE_KEY, output_dict
      )
    )
    with _traced_less(cache_disabled) as self._inspected:
      return super().Do(input_dict, output_dict, exec_properties)

  def _GetPreprocessingFn(self, inputs, unused_outputs):
    preprocessing_fn = super()._GetPreprocessingFn(inputs, unused_outputs)
    self._inspected.preprocessing_fn = preprocessing_fn
    return preprocessing_fn


class TraceOnceTransform(Transform):
  """TFX's Transform component with `TraceOnceTransformExecutor`."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(TraceOnceTransformExecutor)
