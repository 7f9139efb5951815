"""The Pusher: only a blessed model, published as an atomic, monotonically versioned push.

TFX's Pusher pushes unblessed models when no blessing is wired and copies into
`<base>/<unix time>` in place, so readers can see half a model and two pushes
in one second collide. This executor uses `components.serving.push` instead.
"""

from absl import logging
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import json_utils, path_utils, proto_utils

from components import serving
from components.training import ARCHITECTURE_KEY


class AtomicPusherExecutor(pusher_executor.Executor):
  """Pushes the Model to the filesystem destination if, and only if, it is blessed."""

  def Do(self, input_dict, output_dict, exec_properties):
    model_push = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.PUSHED_MODEL_KEY])
    if not input_dict.get(standard_component_specs.MODEL_BLESSING_KEY):
      raise RuntimeError('refusing to push: no model blessing is wired to the Pusher')
    if not self.CheckBlessing(input_dict):
      logging.info('Model not blessed; nothing pushed.')
      self._MarkNotPushed(model_push)
      return
    model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
    blessing = artifact_utils.get_single_instance(
        input_dict[standard_component_specs.MODEL_BLESSING_KEY])
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
                              destination)
    custom_config = json_utils.loads(
        exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or 'null') or {}
    pushed = serving.push(
        serving_model=path_utils.serving_model_path(model.uri),
        eval_model=path_utils.eval_model_path(model.uri),
        push_dir=destination.filesystem.base_directory,
        record={
            'model_uri': model.uri,
            'model_id': model.id,
            'blessing_uri': blessing.uri,
            'pipeline_run_id': self._context.pipeline_run_id if self._context else None,
            ARCHITECTURE_KEY: custom_config.get(ARCHITECTURE_KEY),
        })
    logging.info('Pushed version %d to %s.', pushed.version, pushed.path)
    self._MarkPushed(model_push, pushed_destination=pushed.path,
                     pushed_version=str(pushed.version))
