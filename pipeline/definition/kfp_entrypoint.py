"""The container entrypoint of the Kubeflow v2 pipeline: TFX's own v2 entrypoint, fed
what KFP 2.x backends really send, and a run with no new data stopped early.

TFX 1.15's `kubeflow_v2_run_executor` was written against Vertex; on the
open-source KFP 2.x backend (driver and launcher in kubeflow/pipelines
`backend/src/v2`) it fails (tensorflow/tfx#7768). Before handing the
executor input to it, this layer:

- drops outputs of KFP's own `system.*` types: with the API server's
  `PUBLISH_LOGS` on (2.5+), the driver adds an `executor-logs` output that
  the launcher writes itself and TFX cannot import a class for;
- types upstream artifacts from the task's declared inputs: the backend
  rebuilds them from ML Metadata with an empty `instanceSchema` (the MLMD
  id as their name, which TFX already accepts);
- names no artifact TFX never saw in the blessing: the Evaluator's baseline
  is the model now serving, read from the serving directory, not an input,
  so its id is 0 and TFX's `refactor_model_blessing` would fail;
- points artifacts in S3 or MinIO (`s3://`, `minio://`) at the launcher's
  copies on the pod's disk, and reports their remote URIs back.

Nothing new: KFP's cache keys on artifact ids, and ExampleGen writes a new
artifact every run, so its cache cannot tell that no span arrived. Instead
every artifact carries a stamp of what the run reads (the compiled spec's
hash and the spans' file fingerprint). The Pusher records the stamp of the
last run that decided (pushed or not) in a state file; ExampleGen finding
the same stamp ingests nothing and marks its output `nothing_new`, and
every later task seeing that mark exits at once, so such a run trains and
pushes nothing. A run that failed before the Pusher decided records
nothing, so the next run (or KFP's retry) does the work.
"""

import argparse
import functools
import json
import logging
import os
import sys
import time

# Flags of this layer, added by the compiler (pipeline.definition.kubeflow); the rest is TFX's.
STATE_FLAG = '--kfp_state'
SPEC_HASH_FLAG = '--kfp_spec_hash'
# Artifact metadata keys.
STAMP_KEY = 'pipeline_inputs'
NOTHING_NEW_KEY = 'nothing_new'

# Where the launcher keeps S3 and MinIO artifacts on the pod's disk
# (`LocalPathForURI`): it downloads every input there before the command and
# uploads every output from there after it, so the image needs no S3 client,
# credentials or TensorFlow file system. `gs://` is read and written
# directly (TensorFlow and Beam have GCS built in), as on Vertex, so TFJob
# replicas in other pods can read a Trainer's inputs there.
LOCAL_PATHS = {'s3://': '/s3/', 'minio://': '/minio/'}

INGEST_EXECUTOR = 'components.example_gen.SpanCsvExampleGenExecutor'
PUSH_OUTPUT = 'pushed_model'

log = logging.getLogger('kfp_entrypoint')


def _title(artifact_type: dict) -> str:
  """The schema title of a KFP ArtifactTypeSchema (JSON form), '' if none."""
  if artifact_type.get('schemaTitle'):
    return artifact_type['schemaTitle']
  for line in (artifact_type.get('instanceSchema') or '').splitlines():
    if line.startswith('title:'):
      return line.split(':', 1)[1].strip()
  return ''


def repair(executor_input: dict, inputs_spec: dict) -> dict:
  """`executor_input` (ExecutorInput as JSON) in the form TFX's v2 entrypoint reads."""
  outputs = executor_input.setdefault('outputs', {})
  artifacts = outputs.get('artifacts', {})
  for key in [k for k, v in artifacts.items() if _launcher_managed(v)]:
    del artifacts[key]
  declared = inputs_spec.get('artifacts', {})
  for key, artifact_list in executor_input.get('inputs', {}).get('artifacts', {}).items():
    for artifact in artifact_list.get('artifacts', []):
      if not _title(artifact.get('type') or {}):
        if key not in declared:
          raise ValueError(f'input artifact {key!r} is not among the declared inputs')
        artifact['type'] = declared[key]['artifactType']
  return executor_input


def _launcher_managed(artifact_list: dict) -> bool:
  return any(
    _title(a.get('type') or {}).startswith('system.') for a in artifact_list.get('artifacts', [])
  )


def local_path(uri: str) -> str | None:
  """Where the launcher keeps the artifact at `uri` on the pod's disk; None if nowhere."""
  for scheme, root in LOCAL_PATHS.items():
    if uri.startswith(scheme):
      return root + uri[len(scheme) :]
  return None


def _artifacts(executor_input: dict):
  for side in ('inputs', 'outputs'):
    for artifact_list in executor_input.get(side, {}).get('artifacts', {}).values():
      yield from artifact_list.get('artifacts', [])


def localize(executor_input: dict) -> dict[str, str]:
  """Points every object-store artifact at the launcher's local copy; returns
  the local paths' remote URIs."""
  remote = {}
  for artifact in _artifacts(executor_input):
    path = local_path(artifact.get('uri', ''))
    if path:
      remote[path] = artifact['uri']
      artifact['uri'] = path
  return remote


def delocalize(executor_output: dict, remote: dict[str, str]):
  """Puts back the remote URIs (in URIs and metadata) that `localize` replaced."""

  def back(value):
    if isinstance(value, str):
      for path, uri in remote.items():
        if value == path or value.startswith(path + '/'):
          return uri + value[len(path) :]
    return value

  for artifact_list in executor_output.get('artifacts', {}).values():
    for artifact in artifact_list.get('artifacts', []):
      artifact['uri'] = back(artifact.get('uri', ''))
      metadata = artifact.get('metadata') or {}
      for key, value in metadata.items():
        metadata[key] = back(value)


def _input_metadata(executor_input: dict) -> list[dict]:
  return [
    artifact.get('metadata') or {}
    for artifact_list in executor_input.get('inputs', {}).get('artifacts', {}).values()
    for artifact in artifact_list.get('artifacts', [])
  ]


# The executor output file is a local path on every backend (the launcher
# maps the task root to /gcs/, /s3/ or /minio/), so a task with nothing to do
# never imports TensorFlow for its file systems.
def _upstream_stamp(upstream: list[dict]) -> str:
  """The run's stamp, from the inputs that carry one: a task reading only the
  curated schema (which reads no data) carries an empty one."""
  return next((str(m[STAMP_KEY]) for m in upstream if m.get(STAMP_KEY)), '')


def _write_output(executor_input: dict, executor_output: dict):
  path = executor_input['outputs']['outputFile']
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    f.write(json.dumps(executor_output))


def _read_output(executor_input: dict) -> dict:
  path = executor_input['outputs']['outputFile']
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.loads(f.read() or '{}')


def _mark_outputs(executor_input: dict, executor_output: dict, metadata: dict) -> dict:
  """`executor_output` with `metadata` added to every output artifact."""
  artifacts = executor_output.setdefault('artifacts', {})
  for key, artifact_list in executor_input['outputs'].get('artifacts', {}).items():
    given = artifacts.setdefault(key, {'artifacts': [dict(a) for a in artifact_list['artifacts']]})
    for artifact in given['artifacts']:
      artifact.setdefault('metadata', {}).update(metadata)
  return executor_output


def _read_state(path: str) -> dict:
  from tfx.dsl.io import fileio

  if not path or not fileio.exists(path):
    return {}
  try:
    with fileio.open(path, 'r') as f:
      state = json.loads(f.read())
  except (ValueError, OSError) as e:
    log.warning('ignoring the unreadable state file %s (%s): this run does the work', path, e)
    return {}
  return state if isinstance(state, dict) else {}


def _write_state(path: str, state: dict):
  from tfx.dsl.io import fileio

  fileio.makedirs(os.path.dirname(path))
  temporary = f'{path}.tmp-{os.getpid()}'
  with fileio.open(temporary, 'w') as f:
    f.write(json.dumps(state, indent=2))
  fileio.rename(temporary, path, overwrite=True)


def _ingest_stamp(executor_input: dict, inputs_spec: dict, spec_hash: str) -> str:
  """What an ingest reads: the compiled spec and the spans' file fingerprint."""
  import hashlib

  from google.protobuf import json_format
  from kfp.pipeline_spec import pipeline_spec_pb2
  from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as utils

  from components import example_gen

  parsed = json_format.ParseDict(
    executor_input, pipeline_spec_pb2.ExecutorInput(), ignore_unknown_fields=True
  )
  spec = json_format.ParseDict(
    inputs_spec, pipeline_spec_pb2.ComponentInputsSpec(), ignore_unknown_fields=True
  )
  exec_properties = utils.parse_execution_properties(
    parsed.inputs.parameter_values, parsed.inputs.parameters, spec
  )
  fingerprint = example_gen.selection(exec_properties).fingerprint
  return hashlib.sha256(f'{spec_hash}\n{fingerprint}'.encode()).hexdigest()


def _refactor_blessing(blessing, name_from_id, tfx_refactor):
  """TFX's `refactor_model_blessing` for the ids it knows; an id it never saw
  (the serving baseline's 0) is dropped: that model is named by `baseline_version`."""
  from tfx.components.evaluator import constants

  for key in (
    constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY,
    constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY,
  ):
    if (
      blessing.has_custom_property(key)
      and blessing.get_int_custom_property(key) not in name_from_id
    ):
      del blessing.mlmd_artifact.custom_properties[key]
  tfx_refactor(blessing, name_from_id)


def _run_tfx(args: argparse.Namespace, executor_input: dict, beam_args: list[str]):
  from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as utils
  from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

  # TFX's entrypoint calls it by module attribute, after the executor ran.
  utils.refactor_model_blessing = functools.partial(
    _refactor_blessing, tfx_refactor=utils.refactor_model_blessing
  )
  args.json_serialized_invocation_args = json.dumps(executor_input)
  kubeflow_v2_run_executor._run_executor(args, beam_args)  # pylint: disable=protected-access


def parse_flags(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
  """TFX's v2 entrypoint flags and this layer's; the rest are Beam's."""
  parser = argparse.ArgumentParser(prog='python -m pipeline.definition.kfp_entrypoint')
  parser.add_argument('--executor_class_path', required=True)
  parser.add_argument('--json_serialized_invocation_args', required=True)
  parser.add_argument('--json_serialized_inputs_spec_args', default='')
  parser.add_argument(STATE_FLAG, default='', help='the last decided run, read and written here')
  parser.add_argument(SPEC_HASH_FLAG, default='', help="the compiled spec's hash")
  return parser.parse_known_args(argv)


def run(args: argparse.Namespace, beam_args: list[str]) -> str:
  """Runs one task; returns what it did: 'ran', 'nothing_new'."""
  executor_input = json.loads(args.json_serialized_invocation_args)
  inputs_spec = json.loads(args.json_serialized_inputs_spec_args or '{}')
  repair(executor_input, inputs_spec)
  upstream = _input_metadata(executor_input)
  if any(str(m.get(NOTHING_NEW_KEY, '')) == 'true' for m in upstream):
    # Upstream found nothing new: this task has nothing to do either.
    stamp = _upstream_stamp(upstream)
    log.info('nothing new since the last decided run: %s not run', args.executor_class_path)
    _write_output(
      executor_input, _mark_outputs(executor_input, {}, {NOTHING_NEW_KEY: 'true', STAMP_KEY: stamp})
    )
    return NOTHING_NEW_KEY
  if args.executor_class_path == INGEST_EXECUTOR:
    stamp = _ingest_stamp(executor_input, inputs_spec, args.kfp_spec_hash)
    state = _read_state(args.kfp_state)
    if state.get(STAMP_KEY) == stamp:
      log.info(
        'nothing new: the spans and the pipeline are those of the run decided at %s '
        '(%s); no ingest, no training, no push',
        state.get('decided_at'),
        state.get('outcome'),
      )
      _write_output(
        executor_input,
        _mark_outputs(executor_input, {}, {NOTHING_NEW_KEY: 'true', STAMP_KEY: stamp}),
      )
      return NOTHING_NEW_KEY
  else:
    stamp = _upstream_stamp(upstream)
  remote = localize(executor_input)
  _run_tfx(args, executor_input, beam_args)
  executor_output = _mark_outputs(executor_input, _read_output(executor_input), {STAMP_KEY: stamp})
  delocalize(executor_output, remote)
  _write_output(executor_input, executor_output)
  if PUSH_OUTPUT in executor_input['outputs'].get('artifacts', {}) and args.kfp_state and stamp:
    (pushed,) = executor_output['artifacts'][PUSH_OUTPUT]['artifacts']
    outcome = (
      'pushed' if pushed.get('metadata', {}).get('pushed') in (1, 1.0, True) else 'not pushed'
    )
    _write_state(
      args.kfp_state,
      {
        STAMP_KEY: stamp,
        'outcome': outcome,
        'decided_at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        'pushed_model': pushed.get('uri'),
      },
    )
  return 'ran'


def main(argv: list[str] | None = None) -> int:
  logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
  args, beam_args = parse_flags(sys.argv[1:] if argv is None else argv)
  from components import beam_tuning

  beam_tuning.install()
  run(args, beam_args)
  return 0


if __name__ == '__main__':
  sys.exit(main())
