"""ConcurrentDagRunner's order: side branches side by side, a chain in the calling thread,
and after a failure only what does not depend on it runs; the earliest failure in pipeline
order is raised."""

import threading
import time

import pytest
from tfx.orchestration import metadata
from tfx.proto.orchestration import pipeline_pb2

from components import ids
from pipeline.definition import concurrent_runner
from pipeline.definition.concurrent_runner import _run_in_order, _SerializedMetadata


def node(name: str, *upstream: str, skip: bool = False) -> pipeline_pb2.PipelineNode:
  n = pipeline_pb2.PipelineNode()
  n.node_info.id = name
  n.upstream_nodes.extend(upstream)
  if skip:
    n.execution_options.skip.SetInParent()
  return n


# The pipeline's shape, in the compiler's topological order: the data is
# profiled and checked while Transform analyses it.
DAG = [
  node('CsvExampleGen'),
  node('SchemaGen'),
  node('StatisticsGen', 'CsvExampleGen'),
  node('Transform', 'CsvExampleGen', 'SchemaGen'),
  node('ExampleValidator', 'StatisticsGen', 'SchemaGen'),
  node('Trainer', 'CsvExampleGen', 'Transform', 'ExampleValidator'),
  node('Evaluator', 'Trainer'),
  node('Pusher', 'Trainer', 'Evaluator'),
]


class Recorder:
  """A `launch` that records each node's thread and start/end, taking `seconds[name]`."""

  def __init__(self, seconds=None, fail=()):
    self.seconds, self.fail = seconds or {}, set(fail)
    self.spans, self.threads = {}, {}
    self._lock = threading.Lock()

  def __call__(self, n):
    name = n.node_info.id
    start = time.monotonic()
    time.sleep(self.seconds.get(name, 0.01))
    with self._lock:
      self.spans[name] = (start, time.monotonic())
      self.threads[name] = threading.current_thread()
    if name in self.fail:
      raise RuntimeError(f'{name} broke')

  def overlap(self, a, b) -> bool:
    (a0, a1), (b0, b1) = self.spans[a], self.spans[b]
    return a0 < b1 and b0 < a1


def test_the_data_checks_run_while_transform_analyses_and_the_chain_runs_in_this_thread():
  launch = Recorder({'StatisticsGen': 0.3, 'Transform': 0.3})
  _run_in_order(DAG, launch)
  assert set(launch.spans) == {n.node_info.id for n in DAG}
  assert launch.overlap('StatisticsGen', 'Transform')
  for n in DAG:  # every node started after all its upstream nodes ended
    for up in n.upstream_nodes:
      assert launch.spans[up][1] <= launch.spans[n.node_info.id][0], (up, n.node_info.id)
  main = threading.main_thread()
  # The first ready node in pipeline order runs here; the Trainer (whose
  # SIGTERM handler needs the main thread) and what follows it too.
  for name in (
    'CsvExampleGen',
    'StatisticsGen',
    'ExampleValidator',
    'Trainer',
    'Evaluator',
    'Pusher',
  ):
    assert launch.threads[name] is main, name
  assert launch.threads['Transform'] is not main


def test_bad_data_that_breaks_transform_still_reaches_the_validator_whose_error_is_raised():
  # Transform fails first; the validator runs after it, and fails with the
  # error that explains it: that one is raised, and nothing trains.
  launch = Recorder(
    {'StatisticsGen': 0.3, 'Transform': 0.05}, fail={'Transform', 'ExampleValidator'}
  )
  with pytest.raises(RuntimeError, match='ExampleValidator broke'):
    _run_in_order(DAG, launch, error_order=ids.ALL)
  assert launch.spans['Transform'][1] < launch.spans['ExampleValidator'][1]
  assert not {'Trainer', 'Evaluator', 'Pusher'} & set(launch.spans)


def test_without_an_error_order_the_first_failure_in_topological_order_is_raised():
  launch = Recorder({'StatisticsGen': 0.3}, fail={'Transform', 'ExampleValidator'})
  with pytest.raises(RuntimeError, match='Transform broke'):
    _run_in_order(DAG, launch)


def test_a_failed_nodes_downstream_never_starts_and_the_side_branch_finishes():
  launch = Recorder({'StatisticsGen': 0.05, 'Transform': 0.4}, fail={'StatisticsGen'})
  with pytest.raises(RuntimeError, match='StatisticsGen broke'):
    _run_in_order(DAG, launch)
  assert 'Transform' in launch.spans  # finished, not abandoned mid-write
  assert 'ExampleValidator' not in launch.spans


def test_skipped_nodes_count_as_done():
  nodes = [node('A', skip=True), node('B', 'A'), node('C', 'B')]
  launch = Recorder()
  _run_in_order(nodes, launch)
  assert list(launch.spans) == ['B', 'C']


def test_one_launcher_at_a_time_holds_the_metadata_store(tmp_path):
  config = metadata.sqlite_metadata_connection_config(str(tmp_path / 'mlmd.sqlite'))
  lock = threading.RLock()
  first, second = _SerializedMetadata(config, lock), _SerializedMetadata(config, lock)
  inside = []

  def use(m, name):
    with m:
      inside.append(name)
      time.sleep(0.2)
      inside.append(name)

  with first, first:  # reentrant: a launcher nests its own connection
    thread = threading.Thread(target=use, args=(second, 'second'))
    thread.start()
    time.sleep(0.1)
    assert inside == []  # the other launcher waits
  thread.join()
  assert inside == ['second', 'second']


def test_partial_runs_are_refused():
  with pytest.raises(ValueError, match='partial'):
    concurrent_runner.ConcurrentDagRunner().run_with_ir(
      pipeline_pb2.Pipeline(), pipeline_pb2.RunOptions()
    )
