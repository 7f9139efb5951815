"""A KFP 2.x backend's driver and launcher, emulated: runs a compiled v2 spec task by task.

Written from kubeflow/pipelines `backend/src/v2` at tag 2.17.0:

- `driver/driver.go` `provisionOutputs`: each output's URI is
  `<root>/<pipeline>/<run>/<task>/<uuid>/<output>`, its name the output
  key; with the API server's `PUBLISH_LOGS` on (2.5+), an `executor-logs`
  output of schemaTitle `system.Artifact`; the executor output file under
  the task root. Before 2.17 (`--version 2.0`, read at tag 2.0.5): no
  uuid, no name, and the output file at a fixed path on the pod's disk.
- `driver/resolve.go` and `metadata/client.go`
  (`GetOutputArtifactsByExecutionId`, `OutputArtifact.ToRuntimeArtifact`):
  an upstream artifact arrives with the MLMD id as its name, its type
  `{instanceSchema: ""}`, and its MLMD custom properties as metadata.
- `metadata/converter.go`: metadata to MLMD (strings stay strings, numbers
  become doubles, bools ints, lists and structs wrapped in a struct under
  `list` / `struct`; null refused) and back (ints and doubles as numbers);
  `RecordArtifact` adds `display_name` and `store_session_info`.
- `component/launcher_v2.go`: `{{$}}` in the command and arguments is the
  executor input as JSON; the task's output goes to the executor-logs
  file; after a successful command the executor output's URIs and
  metadata are merged into the outputs (`mergeRuntimeArtifacts`), and a
  missing output file means no changes; a failed task records only its
  logs.
- `driver/cache.go` and `cacheutils/cache.go`: the cache key is the input
  artifacts' names, the input parameter values, the outputs' types, the
  output parameters' types, command and arguments, image and PVC names;
  a task with caching on reuses a completed execution's outputs.

- `component/launcher_v2.go` `downloadArtifacts`, `prepareOutputFolders`,
  `uploadOutputArtifacts`, `LocalPathForURI`: every input artifact in an
  object store is downloaded to `/s3/<bucket>/<key>` (`/gcs/`, `/minio/`)
  on the pod's disk before the command, and every output uploaded from
  there after it; the task's own environment has no store credentials.

The pipeline root is an `s3://` bucket (the endpoint and credentials in the
environment, for the emulated launcher only), or a local folder. Each task
runs in a mount namespace of its own with its pod's disk at those paths.
The run is one process per KFP run; ML Metadata is a JSON file between
runs. Run it inside a private mount namespace with the PVC bind-mounted at
its mountPath (see tests/test_kfp_backend.py).
"""

import argparse
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid

import yaml

EXECUTOR_LOGS = 'executor-logs'
POD_OUTPUT_FILE = '/tmp/kfp_outputs/output_metadata.json'


class Store:
  """ML Metadata as the backend uses it: artifacts with custom properties, executions."""

  def __init__(self, path: pathlib.Path):
    self.path = path
    data = json.loads(path.read_text()) if path.exists() else {}
    self.artifacts = {int(k): v for k, v in data.get('artifacts', {}).items()}
    self.executions = data.get('executions', [])

  def save(self):
    self.path.write_text(
      json.dumps({'artifacts': self.artifacts, 'executions': self.executions}, indent=1)
    )

  def record_artifact(self, name: str, runtime: dict) -> int:
    """`RecordArtifact`: the runtime artifact's metadata as custom properties."""
    properties = {k: _to_mlmd(v) for k, v in (runtime.get('metadata') or {}).items()}
    properties.setdefault('display_name', {'string': name})
    properties.setdefault('store_session_info', {'string': '{"Provider":"local"}'})
    artifact_id = max(self.artifacts, default=0) + 1
    self.artifacts[artifact_id] = {'uri': runtime['uri'], 'custom_properties': properties}
    return artifact_id

  def runtime_artifact(self, artifact_id: int) -> dict:
    """`OutputArtifact.ToRuntimeArtifact` as `resolve.go` calls it for an upstream output."""
    artifact = self.artifacts[artifact_id]
    return {
      'name': str(artifact_id),
      'uri': artifact['uri'],
      'metadata': {k: _from_mlmd(v) for k, v in artifact['custom_properties'].items()},
      'type': {'instanceSchema': ''},
    }


def _to_mlmd(value):
  """`StructValueToMLMDValue`."""
  if isinstance(value, bool):
    return {'int': int(value)}
  if isinstance(value, str):
    return {'string': value}
  if isinstance(value, int | float):
    return {'double': float(value)}
  if isinstance(value, list):
    return {'struct': {'list': value}}
  if isinstance(value, dict):
    return {'struct': {'struct': value}}
  raise ValueError(f'unknown/unsupported value type {type(value).__name__}')


def _from_mlmd(value):
  """`toRuntimeArtifact`'s property conversion."""
  (kind, v), *_ = value.items()
  return float(v) if kind in ('int', 'double') else v


def _sha(payload) -> str:
  return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class Backend:
  """One pipeline spec (and its Kubernetes platform spec) run as KFP 2.x runs it."""

  def __init__(
    self, spec_file: pathlib.Path, root: str, store: Store, publish_logs: bool, version: str
  ):
    documents = list(yaml.safe_load_all(spec_file.read_text()))
    self.spec = documents[0]
    platform = documents[1] if len(documents) > 1 else {}
    self.k8s = platform.get('platforms', {}).get('kubernetes', {}).get('deploymentSpec', {})
    self.root = root
    self.store = store
    self.publish_logs = publish_logs
    self.version = version
    self.objects = ObjectStore()
    # The pods' own disks.
    self.pods = store.path.parent / 'pods'
    self.name = self.spec['pipelineInfo']['name']

  def _order(self) -> list[str]:
    tasks = self.spec['root']['dag']['tasks']
    done, order = set(), []
    while len(order) < len(tasks):
      ready = sorted(
        n for n, t in tasks.items() if n not in done and set(t.get('dependentTasks', [])) <= done
      )
      if not ready:
        raise ValueError('the DAG has a cycle')
      order += ready
      done.update(ready)
    return order

  def run(self, run_id: str, kill: dict | None = None) -> dict:
    """Runs (or, for a run id seen before, retries) the pipeline; each task's state.

    A retry keeps the tasks this run completed, as Argo's retry of the
    workflow does, and runs the rest again. `kill` maps a task name to a
    log line; the task's process is killed when that line appears.
    """
    tasks = self.spec['root']['dag']['tasks']
    done = {
      e['task']: e
      for e in self.store.executions
      if e['run'] == run_id and e['state'] in ('COMPLETE', 'CACHED')
    }
    states = {}
    for name in self._order():
      task = tasks[name]
      if name in done:
        states[name] = 'DONE_BEFORE_RETRY'
        continue
      if any(
        states.get(d) not in ('COMPLETE', 'CACHED', 'DONE_BEFORE_RETRY')
        for d in task.get('dependentTasks', [])
      ):
        states[name] = 'NOT_RUN'
        continue
      started = time.monotonic()
      states[name] = self._task(run_id, name, task, done, (kill or {}).get(name))
      print(
        f'{run_id} {name:<18} {states[name]:<9} {time.monotonic() - started:6.1f} s', flush=True
      )
      if states[name] in ('COMPLETE', 'CACHED'):
        done[name] = self.store.executions[-1]
      self.store.save()
    return states

  def _inputs(self, task: dict, done: dict) -> dict:
    parameters = {}
    for key, spec in task.get('inputs', {}).get('parameters', {}).items():
      runtime = spec.get('runtimeValue', {})
      if 'constant' not in runtime:
        raise ValueError(f'parameter {key}: only runtimeValue.constant is emulated: {spec}')
      parameters[key] = runtime['constant']
    artifacts = {}
    for key, spec in task.get('inputs', {}).get('artifacts', {}).items():
      upstream = spec['taskOutputArtifact']
      artifact_id = done[upstream['producerTask']]['outputs'][upstream['outputArtifactKey']]
      artifacts[key] = {'artifacts': [self.store.runtime_artifact(artifact_id)]}
    return {'parameterValues': parameters, 'artifacts': artifacts}

  def _outputs(self, run_id: str, name: str, component: dict) -> dict:
    definitions = dict(component.get('outputDefinitions', {}).get('artifacts', {}))
    if self.publish_logs:
      definitions[EXECUTOR_LOGS] = {'artifactType': {'schemaTitle': 'system.Artifact'}}
    run_root = f'{self.root.rstrip("/")}/{self.name}/{run_id}'
    if self.version == '2.0':
      # 2.0 to 2.16: no salt in the URI, no name, and one fixed output file in
      # each pod (`component.OutputMetadataFilepath`).
      task_root, named, output_file = f'{run_root}/{name}', False, POD_OUTPUT_FILE
    else:
      task_root, named = f'{run_root}/{name}/{uuid.uuid4()}', True
      output_file = f'{local_path(task_root) or task_root}/output_metadata.json'
    return {
      'artifacts': {
        key: {
          'artifacts': [
            {
              **({'name': key} if named else {}),
              'uri': f'{task_root}/{key}',
              'type': spec['artifactType'],
              **({'metadata': spec['metadata']} if 'metadata' in spec else {}),
            }
          ]
        }
        for key, spec in definitions.items()
      },
      'outputFile': output_file,
    }

  def _fingerprint(self, executor_input, component, container, executor_label) -> str:
    outputs = {
      key: {k: v for k, v in a['artifacts'][0].items() if k in ('type', 'metadata')}
      for key, a in executor_input['outputs']['artifacts'].items()
    }
    mounts = self.k8s.get('executors', {}).get(executor_label, {}).get('pvcMount', [])
    return _sha(
      {
        'inputArtifactNames': {
          k: [a['name'] for a in v['artifacts']]
          for k, v in executor_input['inputs']['artifacts'].items()
        },
        'inputParameterValues': executor_input['inputs']['parameterValues'],
        'outputArtifactsSpec': outputs,
        'outputParametersSpec': {
          k: v['parameterType']
          for k, v in component.get('outputDefinitions', {}).get('parameters', {}).items()
        },
        'cmdArgs': [*container['command'], *container['args']],
        'image': container['image'],
        'pvcNames': sorted({m['constant'] for m in mounts}),
      }
    )

  def _task(self, run_id, name, task, done, kill_on) -> str:
    component = self.spec['components'][task['componentRef']['name']]
    label = component['executorLabel']
    container = self.spec['deploymentSpec']['executors'][label]['container']
    executor_input = {
      'inputs': self._inputs(task, done),
      'outputs': self._outputs(run_id, name, component),
    }
    execution = {'run': run_id, 'task': name, 'outputs': {}}
    if task.get('cachingOptions', {}).get('enableCache'):
      execution['fingerprint'] = self._fingerprint(executor_input, component, container, label)
      for earlier in self.store.executions:
        if (
          earlier.get('fingerprint') == execution['fingerprint'] and earlier['state'] == 'COMPLETE'
        ):
          self.store.executions.append(
            {**execution, 'state': 'CACHED', 'outputs': earlier['outputs']}
          )
          return 'CACHED'
    text = json.dumps(executor_input)
    command = [part.replace('{{$}}', text) for part in container['command']]
    args = [part.replace('{{$}}', text) for part in container['args']]
    if any('{{$' in part for part in command + args):
      raise ValueError(f'{name}: a placeholder this emulation does not fill: {args}')
    outputs = executor_input['outputs']['artifacts']
    pod = Pod(self.pods / self.name / run_id / name / str(uuid.uuid4()), self.root)
    # downloadArtifacts and prepareOutputFolders.
    for artifact_list in executor_input['inputs']['artifacts'].values():
      for artifact in artifact_list['artifacts']:
        if local_path(artifact['uri']):
          self.objects.download(artifact['uri'], pod.disk(local_path(artifact['uri'])))
    for artifact_list in outputs.values():
      uri = artifact_list['artifacts'][0]['uri']
      pod.disk(local_path(uri) or uri).parent.mkdir(parents=True, exist_ok=True)
    # The task's output: the executor-logs file, else (no PUBLISH_LOGS) the pod's log.
    if EXECUTOR_LOGS in outputs:
      uri = outputs[EXECUTOR_LOGS]['artifacts'][0]['uri']
      log_path = pod.disk(local_path(uri) or uri)
    else:
      log_path = pod.dir / 'pod.log'
    code = _launch(pod.command([*command, *args]), log_path, kill_on)
    if code != 0:
      if EXECUTOR_LOGS in outputs:  # only the logs are recorded for a failed task
        logs = outputs[EXECUTOR_LOGS]['artifacts'][0]
        self.objects.upload(pod.disk(local_path(logs['uri']) or logs['uri']), logs['uri'])
        execution['outputs'][EXECUTOR_LOGS] = self.store.record_artifact(EXECUTOR_LOGS, logs)
      self.store.executions.append(
        {**execution, 'state': 'FAILED', 'exit_code': code, 'log': str(log_path)}
      )
      return 'FAILED'
    output_file = pod.disk(executor_input['outputs']['outputFile'])
    executor_output = json.loads(output_file.read_text()) if output_file.exists() else {}
    for key, artifact_list in outputs.items():
      artifact = artifact_list['artifacts'][0]
      given = executor_output.get('artifacts', {}).get(key, {}).get('artifacts')
      if given and key != EXECUTOR_LOGS:
        if given[0].get('uri'):
          artifact['uri'] = given[0]['uri']
        if given[0].get('metadata'):
          artifact['metadata'] = {**artifact.get('metadata', {}), **given[0]['metadata']}
      if local_path(artifact['uri']):
        self.objects.upload(pod.disk(local_path(artifact['uri'])), artifact['uri'])
      execution['outputs'][key] = self.store.record_artifact(key, artifact)
    self.store.executions.append({**execution, 'state': 'COMPLETE', 'log': str(log_path)})
    return 'COMPLETE'


def local_path(uri: str) -> str | None:
  """`LocalPathForURI`: where the launcher keeps an object-store artifact on the pod's disk."""
  for scheme, root in (('gs://', '/gcs/'), ('minio://', '/minio/'), ('s3://', '/s3/')):
    if uri.startswith(scheme):
      return root + uri[len(scheme) :]
  return None


class Pod:
  """A task's pod: a disk of its own at the launcher's local paths, nothing else private."""

  def __init__(self, directory: pathlib.Path, root: str):
    self.dir = directory
    self.dir.mkdir(parents=True)
    self.mounts = [os.path.dirname(POD_OUTPUT_FILE)]
    if local_path(root):
      self.mounts.append('/' + local_path(root).split('/')[1])

  def disk(self, path: str) -> pathlib.Path:
    """`path` as this pod sees it, on the host: the pod's disk under its private mounts."""
    if any(path == m or path.startswith(m + '/') for m in self.mounts):
      return self.dir / path.lstrip('/')
    return pathlib.Path(path)

  def command(self, argv: list[str]) -> list[str]:
    """`argv` run in a mount namespace of its own, the pod's disk bound at those paths."""
    binds = ' && '.join(f'mkdir -p {m} "$0"{m} && mount --bind "$0"{m} {m}' for m in self.mounts)
    return ['unshare', '--mount', 'sh', '-c', f'{binds} && exec "$@"', str(self.dir), *argv]


class ObjectStore:
  """The pipeline root's bucket, reached as the launcher reaches it (boto3 here; endpoint
  and credentials from the environment: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)."""

  def __init__(self):
    self._client = None

  @property
  def client(self):
    if self._client is None:
      import boto3

      self._client = boto3.client('s3')
    return self._client

  @staticmethod
  def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.split('://', 1)[1].partition('/')
    return bucket, key

  def download(self, uri: str, destination: pathlib.Path):
    """The object at `uri`, or every object under it, into `destination`."""
    bucket, key = self._split(uri)
    pages = self.client.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix=key)
    for item in (o for page in pages for o in page.get('Contents', [])):
      if item['Key'] == key:
        target = destination
      elif item['Key'].startswith(key.rstrip('/') + '/'):
        target = destination / item['Key'][len(key.rstrip('/')) + 1 :]
      else:
        continue
      target.parent.mkdir(parents=True, exist_ok=True)
      self.client.download_file(bucket, item['Key'], str(target))

  def upload(self, source: pathlib.Path, uri: str):
    """`source`, a file or a folder, to `uri`; nothing if it does not exist (a
    component need not write every output, as the launcher allows)."""
    bucket, key = self._split(uri)
    if source.is_file():
      self.client.upload_file(str(source), bucket, key)
    for path in sorted(source.rglob('*')) if source.is_dir() else []:
      if path.is_file():
        self.client.upload_file(str(path), bucket, f'{key}/{path.relative_to(source)}')


def _launch(argv: list[str], log_path: pathlib.Path, kill_on: str | None) -> int:
  """The user command, its output in the executor-logs file; killed when `kill_on` is logged."""
  with log_path.open('wb') as log:
    # The launcher's object-store credentials are not the user container's.
    env = {k: v for k, v in os.environ.items() if not k.startswith('AWS_')}
    process = subprocess.Popen(
      argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    while process.poll() is None:
      if kill_on and kill_on in log_path.read_text(errors='replace'):
        os.killpg(process.pid, signal.SIGKILL)
      time.sleep(0.2)
  return process.returncode


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--spec', type=pathlib.Path, required=True)
  parser.add_argument('--root', required=True, help='the run-time pipeline root')
  parser.add_argument('--store', type=pathlib.Path, required=True, help='the ML Metadata file')
  parser.add_argument('--publish-logs', choices=('true', 'false'), default='true')
  parser.add_argument(
    '--version', choices=('2.17', '2.0'), default='2.17', help="the backend's output layout"
  )
  parser.add_argument('--kill', nargs=2, action='append', metavar=('TASK', 'LOG_LINE'), default=[])
  parser.add_argument('run_id')
  args = parser.parse_args(argv)
  store = Store(args.store)
  backend = Backend(args.spec, args.root, store, args.publish_logs == 'true', args.version)
  states = backend.run(args.run_id, kill=dict(args.kill))
  print(json.dumps({'run': args.run_id, 'tasks': states}))
  return 0 if all(s in ('COMPLETE', 'CACHED', 'DONE_BEFORE_RETRY') for s in states.values()) else 1


if __name__ == '__main__':
  sys.exit(main())
