"""`ConcurrentDagRunner`: TFX's LocalDagRunner, running independent nodes side by side.

LocalDagRunner (TFX 1.15) runs one node at a time, in topological order; its
own TODO says independent nodes should run in parallel. Here StatisticsGen and
ExampleValidator (profiling and checking the data) run while Transform
analyses it, which both only read. Launching a node is TFX's own `Launcher`,
as in LocalDagRunner; only the order and the threads are ours.
"""

import datetime
import threading
from collections.abc import Callable, Sequence

from absl import logging
from tfx.dsl.compiler import constants
from tfx.orchestration import metadata
from tfx.orchestration.local import runner_utils
from tfx.orchestration.portable import launcher, runtime_parameter_utils, tfx_runner
from tfx.proto.orchestration import pipeline_pb2

from pipeline.definition.progress import FAILED_LINE, FINISHED_LINE, RUNNING_LINE


class _SerializedMetadata(metadata.Metadata):
  """One launcher's MLMD connection, used by one thread at a time across
  launchers. The store is one SQLite file: MLMD's SQLite source gives up
  after ten short retries on a lock another connection holds, and TFX's
  `Metadata` is not thread-safe. Launchers hold it only to read inputs and
  publish outputs, never while their executor runs."""

  def __init__(self, connection_config, lock: threading.RLock):
    super().__init__(connection_config)
    self._lock = lock

  def __enter__(self):
    self._lock.acquire()
    try:
      return super().__enter__()
    except BaseException:
      self._lock.release()
      raise

  def __exit__(self, *exc_info):
    try:
      super().__exit__(*exc_info)
    finally:
      self._lock.release()


class ConcurrentDagRunner(tfx_runner.IrBasedRunner):
  """Runs a pipeline IR here, starting each node once its upstream nodes succeeded.

  The calling thread runs one ready node at a time (the first in pipeline
  order) and starts the other ready ones in threads of their own, so a
  pipeline without side branches runs exactly as under LocalDagRunner, in
  the main thread (where a Trainer can turn SIGTERM into its cleanup). A
  failed node's downstream nodes never start; the others still run, and then
  one error is raised: of the failed nodes, the first in `error_order` (node
  ids), else the first in the pipeline's topological order. Naming
  ExampleValidator before Transform there, bad data that breaks Transform
  still reaches the validator, whose named anomaly is the error users see.
  """

  def __init__(self, error_order: Sequence[str] = ()):
    self._error_order = tuple(error_order)

  def run_with_ir(
    self, pipeline: pipeline_pb2.Pipeline, run_options: pipeline_pb2.RunOptions | None = None
  ) -> None:
    if run_options is not None:
      raise ValueError('ConcurrentDagRunner does not run partial pipelines (run_options)')
    # As LocalDagRunner: a run id not set yet is the time.
    runtime_parameter_utils.substitute_runtime_parameter(
      pipeline, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: datetime.datetime.now().isoformat()}
    )
    deployment_config = runner_utils.extract_local_deployment_config(pipeline)
    connection_config = getattr(
      deployment_config.metadata_connection_config,
      deployment_config.metadata_connection_config.WhichOneof('connection_config'),
    )
    mlmd_lock = threading.RLock()

    def launch(node: pipeline_pb2.PipelineNode) -> None:
      node_id = node.node_info.id
      logging.info(RUNNING_LINE, node_id)
      try:
        launcher.Launcher(
          pipeline_node=node,
          mlmd_connection=_SerializedMetadata(connection_config, mlmd_lock),
          pipeline_info=pipeline.pipeline_info,
          pipeline_runtime_spec=pipeline.runtime_spec,
          executor_spec=runner_utils.extract_executor_spec(deployment_config, node_id),
          custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment_config, node_id),
        ).launch()
      except Exception:
        logging.info(FAILED_LINE, node_id)
        raise
      logging.info(FINISHED_LINE, node_id)

    _run_in_order([n.pipeline_node for n in pipeline.nodes], launch, self._error_order)


def _run_in_order(
  nodes: list, launch: Callable[[pipeline_pb2.PipelineNode], None], error_order: Sequence[str] = ()
) -> None:
  """Calls `launch(node)` for each node once all its `upstream_nodes` have
  returned without error (see ConcurrentDagRunner); then raises the failure
  first in `error_order`, else in `nodes`' order, if any."""
  _Schedule(nodes, launch, error_order).run()


class _Schedule:
  """Which nodes are pending, running, done or failed; `changed` guards it all."""

  def __init__(
    self,
    nodes: list,
    launch: Callable[[pipeline_pb2.PipelineNode], None],
    error_order: Sequence[str] = (),
  ):
    self._order = {node.node_info.id: i for i, node in enumerate(nodes)}
    named = [name for name in error_order if name in self._order]
    self._error_rank = {
      name: i for i, name in enumerate([*named, *(n for n in self._order if n not in named)])
    }
    self._launch = launch
    self._pending = [n for n in nodes if not n.execution_options.HasField('skip')]
    self._done = set(self._order) - {n.node_info.id for n in self._pending}
    self._failed: dict[str, Exception] = {}
    self._running: set[str] = set()
    self._caller_busy = False
    self._changed = threading.Condition()

  def run(self) -> None:
    while node := self._next_for_caller():
      error = self._try(node)
      with self._changed:
        self._caller_busy = False
        self._ended(node, error)
    if self._failed:
      raise self._failed[min(self._failed, key=self._error_rank.__getitem__)]

  def _next_for_caller(self):
    """The next node for the calling thread, once one is ready; None when all
    that can run has run."""
    with self._changed:
      node = self._take_ready(for_caller=True)
      while node is None and self._running:
        self._changed.wait()
        node = self._take_ready(for_caller=True)
      self._caller_busy = node is not None
      return node

  def _take_ready(self, for_caller: bool):
    """Under `changed`: marks the ready nodes running and starts them in
    threads, but the first for the calling thread if `for_caller`."""
    ready = [n for n in self._pending if set(n.upstream_nodes) <= self._done]
    for n in ready:
      self._pending.remove(n)
      self._running.add(n.node_info.id)
    for n in ready[1:] if for_caller else ready:
      threading.Thread(target=self._in_thread, args=(n,), name=n.node_info.id, daemon=True).start()
    return ready[0] if for_caller and ready else None

  def _in_thread(self, node) -> None:
    error = self._try(node)
    with self._changed:
      self._ended(node, error)
      if self._caller_busy:  # else the calling thread, woken, takes what is ready
        self._take_ready(for_caller=False)

  def _try(self, node) -> Exception | None:
    try:
      self._launch(node)
    except Exception as e:  # raised by `run`, in the calling thread
      return e
    return None

  def _ended(self, node, error: Exception | None) -> None:
    """Under `changed`."""
    self._running.discard(node.node_info.id)
    if error is None:
      self._done.add(node.node_info.id)
    else:
      self._failed[node.node_info.id] = error
    self._changed.notify_all()
