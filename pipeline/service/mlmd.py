"""ML Metadata access, in one place: the store of a pipeline's SQLite file,
a run's executions by node, their outputs, live local artifacts, and the
executions a dead run left running.

ML Metadata's protos import TensorFlow's protobuf stack: imported here when
first needed, so a run answered without TensorFlow never pays for them.
"""

import os


def open_store(metadata_path):
  """The ML Metadata store of a pipeline's SQLite file, created if missing."""
  from ml_metadata import metadata_store
  from ml_metadata.proto import metadata_store_pb2

  # TFX's `sqlite_metadata_connection_config` makes the same; its module
  # imports TensorFlow, which a run that stops at its checks never needs.
  os.makedirs(os.path.dirname(str(metadata_path)) or '.', exist_ok=True)
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = str(metadata_path)
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
  return metadata_store.MetadataStore(config)


def output_artifacts(store, execution_id) -> dict:
  """Output artifacts of an execution, by output key."""
  from ml_metadata.proto import metadata_store_pb2

  events = [
    e
    for e in store.get_events_by_execution_ids([execution_id])
    if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
  ]
  artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
  result = {}
  for e in events:
    key = e.path.steps[0].key if e.path.steps else ''
    if e.artifact_id in artifacts:
      result[key] = artifacts[e.artifact_id]
  return result


def prop(artifact, name):
  """A custom property's value (text or integer), or None."""
  value = artifact.custom_properties.get(name)
  if value is None:
    return None
  return value.string_value or value.int_value


def run_context(store, run_id: str):
  """The 'pipeline_run' context of run `run_id`, or None."""
  return store.get_context_by_type_and_name('pipeline_run', run_id)


def executions_by_node(store, run_context) -> dict:
  """The executions of one pipeline run (a 'pipeline_run' context), by node id."""
  in_run = {e.id for e in store.get_executions_by_context(run_context.id)}
  return {
    node.name.split('.', 1)[-1]: execution
    for node in store.get_contexts_by_type('node')
    for execution in store.get_executions_by_context(node.id)
    if execution.id in in_run
  }


def execution_seconds(execution) -> float:
  return (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000


def state_name(execution) -> str:
  """An execution's state as ML Metadata names it: COMPLETE, CACHED, FAILED, ..."""
  from ml_metadata.proto import metadata_store_pb2

  return metadata_store_pb2.Execution.State.Name(execution.last_known_state)


def live_local_artifacts(store):
  """Every LIVE artifact with files on this machine."""
  from ml_metadata.proto import metadata_store_pb2

  return [
    a
    for a in store.get_artifacts()
    if a.state == metadata_store_pb2.Artifact.LIVE and a.uri and '://' not in a.uri
  ]


def mark_deleted(store, artifacts) -> None:
  """Marks `artifacts` DELETED, so TFX's cache no longer offers them."""
  from ml_metadata.proto import metadata_store_pb2

  for artifact in artifacts:
    artifact.state = metadata_store_pb2.Artifact.DELETED
  if artifacts:
    store.put_artifacts(artifacts)


def cancel_running_executions(store, why: str) -> list[tuple[int, list[str]]]:
  """Marks every execution left RUNNING as CANCELED, saying `why`; returns
  (execution id, its node names) of each."""
  from ml_metadata.proto import metadata_store_pb2

  running = [
    e for e in store.get_executions() if e.last_known_state == metadata_store_pb2.Execution.RUNNING
  ]
  canceled = []
  for execution in running:
    execution.last_known_state = metadata_store_pb2.Execution.CANCELED
    execution.custom_properties['abandoned'].string_value = why
    contexts = store.get_contexts_by_execution(execution.id)
    canceled.append(
      (execution.id, [c.name.split('.', 1)[-1] for c in contexts if c.type_id and '.' in c.name])
    )
  if running:
    store.put_executions(running)
  return canceled
