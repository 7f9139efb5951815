"""The Pusher: only a blessed model, published as an atomic, monotonically versioned push,
and only if the version it was compared with still serves (compare-and-swap).

TFX's Pusher pushes unblessed models when no blessing is wired and copies into
`<base>/<unix time>` in place, so readers can see half a model and two pushes
in one second collide. This executor uses `components.serving.push` instead.
"""

from absl import logging
from tfx import types
from tfx.components import Pusher
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import json_utils, path_utils, proto_utils

from components import serving
from components.evaluation import BASELINE_VERSION_KEY, SERVING_CHECK_KEY
from components.training import ARCHITECTURE_KEY

# Why a blessed model was not pushed, on the PushedModel artifact.
NOT_PUSHED_KEY = 'not_pushed_reason'


class AtomicPusherExecutor(pusher_executor.Executor):
  """Pushes the Model to the filesystem destination if, and only if, it is blessed,
  passed the smoke check the blessing records (it predicts finite values on
  raw eval examples in a fresh process), and the version it was compared
  with still serves."""

  def Do(self, input_dict, output_dict, exec_properties):
    model_push = artifact_utils.get_single_instance(
      output_dict[standard_component_specs.PUSHED_MODEL_KEY]
    )
    if not input_dict.get(standard_component_specs.MODEL_BLESSING_KEY):
      raise RuntimeError('refusing to push: no model blessing is wired to the Pusher')
    if not self.CheckBlessing(input_dict):
      logging.info('Model not blessed; nothing pushed.')
      self._MarkNotPushed(model_push)
      return
    model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
    blessing = artifact_utils.get_single_instance(
      input_dict[standard_component_specs.MODEL_BLESSING_KEY]
    )
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(
      exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination
    )
    custom_config = (
      json_utils.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or 'null')
      or {}
    )
    expected = (
      blessing.get_int_custom_property(BASELINE_VERSION_KEY)
      if blessing.has_custom_property(BASELINE_VERSION_KEY)
      else None
    )
    current = serving.latest(destination.filesystem.base_directory)
    if current and current.record.get('model_uri') == model.uri:
      # E.g. a rerun that changed only the evaluator's settings.
      reason = f'this model already serves, as version {current.version}'
      logging.info('Not pushed: %s.', reason)
      self._MarkNotPushed(model_push)
      model_push.set_string_custom_property(NOT_PUSHED_KEY, reason)
      return
    if not blessing.has_custom_property(SERVING_CHECK_KEY):
      problem = 'the blessing records no smoke check of the serving model'
    else:
      problem = blessing.get_string_custom_property(SERVING_CHECK_KEY)
    if problem:
      logging.warning('Not pushed: %s.', problem)
      self._MarkNotPushed(model_push)
      model_push.set_string_custom_property(NOT_PUSHED_KEY, problem)
      return
    try:
      pushed = self._push(model, blessing, destination, custom_config, expected)
    except serving.StaleBaselineError as e:
      logging.warning('Not pushed: %s.', e)
      self._MarkNotPushed(model_push)
      model_push.set_string_custom_property(NOT_PUSHED_KEY, str(e))
      return
    logging.info('Pushed version %d to %s.', pushed.version, pushed.path)
    self._MarkPushed(model_push, pushed_destination=pushed.path, pushed_version=str(pushed.version))

  def _push(self, model, blessing, destination, custom_config, expected):
    return serving.push(
      serving_model=path_utils.serving_model_path(model.uri),
      eval_model=path_utils.eval_model_path(model.uri),
      push_dir=destination.filesystem.base_directory,
      record={
        'model_uri': model.uri,
        'model_id': model.id,
        'blessing_uri': blessing.uri,
        'pipeline_run_id': self._context.pipeline_run_id if self._context else None,
        ARCHITECTURE_KEY: custom_config.get(ARCHITECTURE_KEY),
      },
      expected_serving=expected,
    )


class CheckedPusher(Pusher):
  """TFX's Pusher with AtomicPusherExecutor."""

  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(AtomicPusherExecutor)

  def __init__(self, model, model_blessing, push_dir: str, custom_config: dict):
    spec = standard_component_specs.PusherSpec(
      model=model,
      model_blessing=model_blessing,
      push_destination=pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=push_dir)
      ),
      custom_config=json_utils.dumps(custom_config),
      pushed_model=types.Channel(type=standard_artifacts.PushedModel),
    )
    base_component.BaseComponent.__init__(self, spec=spec)
