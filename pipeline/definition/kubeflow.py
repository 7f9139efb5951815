"""Kubeflow Pipelines: compile `create_pipeline(config)` for KFP v1 or v2, and submit it.

Compiling adds only the image, the cluster-side locations, Beam options and
the PVC mount; the wiring is `create_pipeline`'s. Submission uses the kfp
1.8 client for v1 (it comes with `tfx[kfp]`) and the KFP v2 REST API for v2,
because kfp 2.x clients conflict with tfx 1.15's pins.
"""

import datetime
import functools
import hashlib
import json
import pathlib
import urllib.error
import urllib.parse
import urllib.request
import uuid

from components.cluster import SHARED_VOLUME
from pipeline.config import Config
from pipeline.definition import kfp_entrypoint

TARGETS = ('kubeflow', 'kubeflow-v2')
# The v2 tasks' container command: TFX's v2 entrypoint behind ours.
ENTRYPOINT = ('python', '-m', 'pipeline.definition.kfp_entrypoint')
DEFAULT_FILES = {'kubeflow': 'pipeline-v1.yaml', 'kubeflow-v2': 'pipeline-v2.yaml'}


def _pipeline(config: Config):
  from pipeline.definition.beam import add_beam_args, beam_args
  from pipeline.definition.pipeline import create_pipeline

  pipeline = create_pipeline(config, config.kubeflow_locations())
  # auto measures local input, which is not what the pods read: it means in-process here.
  # A worker pool for portable/process is a local-machine arrangement.
  if config.beam.runner == 'portable' and config.beam.environment == 'process':
    raise ValueError(
      'beam.environment=process starts a local worker pool; on Kubeflow use '
      "beam.runner=custom with your cluster's runner options"
    )
  add_beam_args(pipeline, beam_args(config) if config.beam.runner != 'auto' else [])
  return pipeline


def compile_pipeline(config: Config, target: str, output: pathlib.Path) -> pathlib.Path:
  """Writes the pipeline for `target` ('kubeflow': Argo workflow for KFP v1,
  'kubeflow-v2': KFP v2 pipeline spec, schema 2.1.0) to `output`, a .yaml file."""
  if target not in TARGETS:
    raise ValueError(f'target {target!r}: expected one of {", ".join(TARGETS)}')
  if output.suffix not in ('.yaml', '.yml'):
    raise ValueError(f'output {output}: must be a .yaml file')
  output.parent.mkdir(parents=True, exist_ok=True)
  pipeline = _pipeline(config)
  if target == 'kubeflow':
    from kfp import onprem
    from tfx.orchestration.kubeflow import kubeflow_dag_runner as v1

    operators = v1.get_default_pipeline_operator_funcs(use_gcp_sa=False)
    operators.append(functools.partial(_v1_resources, config.kubeflow.resources))
    if config.kubeflow.pvc:
      operators.append(
        onprem.mount_pvc(config.kubeflow.pvc, SHARED_VOLUME, config.kubeflow.mount_path)
      )
    runner = v1.KubeflowDagRunner(
      output_dir=str(output.parent),
      output_filename=output.name,
      config=v1.KubeflowDagRunnerConfig(
        kubeflow_metadata_config=v1.get_default_kubeflow_metadata_config(),
        tfx_image=config.kubeflow.image,
        pipeline_operator_funcs=operators,
      ),
    )
  else:
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as v2

    # Schema 2.1.0, with `constant` parameters: the only form KFP 2.x accepts.
    runner = v2.KubeflowV2DagRunner(
      config=v2.KubeflowV2DagRunnerConfig(
        default_image=config.kubeflow.image, use_pipeline_spec_2_1=True
      ),
      output_dir=str(output.parent),
      output_filename=output.name,
    )
  runner.run(pipeline)
  if target == 'kubeflow-v2':
    _finish_v2_spec(output, config)
  return output


def _v1_resources(resources, op):
  """Sets a KFP v1 ContainerOp's CPU and memory (its human name is the component id)."""
  chosen = resources.of(op.human_name)
  op.container.set_cpu_request(f'{chosen.cpu:g}').set_cpu_limit(f'{chosen.cpu_limit:g}')
  op.container.set_memory_request(f'{chosen.memory_gb:g}G')
  op.container.set_memory_limit(f'{chosen.memory_limit_gb:g}G')


def _v2_resources(resources) -> dict:
  """A v2 container's resources in the numeric fields every KFP 2.x driver reads
  (cores; memory in GB, which the driver writes as `<n>G`)."""
  return {
    'cpuRequest': resources.cpu,
    'cpuLimit': resources.cpu_limit,
    'memoryRequest': resources.memory_gb,
    'memoryLimit': resources.memory_limit_gb,
  }


def _finish_v2_spec(spec_file: pathlib.Path, config: Config):
  """What the KFP 2.x backend needs beyond TFX's spec.

  - ExampleGen's cache is off: KFP keys its cache on the task's inputs,
    image and arguments, which stay the same when new files arrive under
    the data root (TFX's fingerprinting driver does not run there).
  - No pre-cache-check hook: TFX adds its stock ExampleGen driver as one,
    which KFP 2.x never runs, and which would hand the executor the newest
    span's pattern where it expects the span pattern itself.
  - Every task runs our entrypoint (`pipeline.definition.kfp_entrypoint`), TFX's own
    fed what the backend really sends, told where the last decided run is
    recorded and the spec's hash, so a run with no new data stops early.
  - The PVC is mounted in every task through a Kubernetes platform spec,
    the second YAML document, as the kfp-kubernetes package writes it;
    without it the serving directory would be each pod's own disk.
  """
  import yaml

  from components import ids

  text = spec_file.read_text()
  header = ''.join(line for line in text.splitlines(keepends=True) if line.startswith('#'))
  spec = yaml.safe_load(text)
  spec['root']['dag']['tasks'][ids.EXAMPLE_GEN]['cachingOptions'] = {'enableCache': False}
  executors = spec['deploymentSpec']['executors'].values()
  for executor in executors:
    executor['container'].pop('lifecycle', None)
  spec_hash = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
  state = f'{config.kubeflow.pipeline_root.rstrip("/")}/kfp-state/{config.pipeline_name}.json'
  for label, executor in spec['deploymentSpec']['executors'].items():
    container = executor['container']
    container['resources'] = _v2_resources(
      config.kubeflow.resources.of(label.removesuffix('_executor'))
    )
    container['command'] = list(ENTRYPOINT)
    container['args'] = [
      *container['args'],
      kfp_entrypoint.STATE_FLAG,
      state,
      kfp_entrypoint.SPEC_HASH_FLAG,
      spec_hash,
    ]
  documents = [spec]
  kf = config.kubeflow
  if kf.pvc:
    # `constant` is what every KFP 2.x driver reads (newer ones prefer
    # pvcNameParameter, and fall back to it).
    documents.append(
      {
        'platforms': {
          'kubernetes': {
            'deploymentSpec': {
              'executors': {
                label: {'pvcMount': [{'constant': kf.pvc, 'mountPath': kf.mount_path}]}
                for label in sorted(spec['deploymentSpec']['executors'])
              }
            }
          }
        }
      }
    )
  spec_file.write_text(header + yaml.safe_dump_all(documents, sort_keys=True))


class SubmitError(RuntimeError):
  """The KFP API refused a request; the message has the URL and the server's answer."""


# Pipeline roots KFP 2.x takes at submission (objectstore/config.go) that the
# components reach: gs:// directly, s3:// and minio:// through the launcher's
# copies on the pod's disk (pipeline.definition.kfp_entrypoint).
V2_PIPELINE_ROOT_SCHEMES = ('gs://', *kfp_entrypoint.LOCAL_PATHS)


def check_v2_pipeline_root(root: str, trainer_cluster: str = 'none') -> str:
  """`root` if KFP 2.x and the components can both use it; else ValueError naming the key."""
  if not root:
    raise ValueError(
      "config key 'kubeflow.v2_pipeline_root': KFP 2.x needs a pipeline root at "
      'submission (gs://, s3:// or minio://bucket/path); pass --pipeline-root or set it'
    )
  if not root.startswith(V2_PIPELINE_ROOT_SCHEMES):
    raise ValueError(
      f"config key 'kubeflow.v2_pipeline_root': {root!r}: KFP 2.x stores artifacts "
      'in an object store only; use gs://, s3:// or minio://bucket/path (the '
      'PVC still holds the serving models and data)'
    )
  if trainer_cluster == 'kubeflow' and root.startswith(tuple(kfp_entrypoint.LOCAL_PATHS)):
    raise ValueError(
      f"config key 'kubeflow.v2_pipeline_root': {root!r}: with trainer.cluster=kubeflow "
      "the TFJob's replicas read the Trainer's inputs from the pipeline root, and only "
      "the Trainer's pod has the launcher's copies of s3:// or minio:// artifacts; use gs://"
    )
  return root


def submit(
  config: Config,
  target: str,
  package: pathlib.Path,
  host: str,
  schedule: str | None = None,
  experiment: str = 'Default',
  namespace: str | None = None,
  pipeline_root: str | None = None,
) -> dict:
  """Uploads `package` as a new version of the pipeline `pipeline_name` (creating
  it the first time) and starts a run, or a recurring run if `schedule` (cron).

  `namespace` is the user's profile namespace on a multi-user KFP install
  (default: kubeflow.user_namespace). Returns the ids of what was created.
  """
  cron = kfp_cron(schedule) if schedule else None
  namespace = namespace or config.kubeflow.user_namespace or None
  version = f'{config.pipeline_name}-{datetime.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}'
  if target == 'kubeflow':
    return _submit_v1(package, host, config.pipeline_name, version, cron, experiment, namespace)
  if target == 'kubeflow-v2':
    root = check_v2_pipeline_root(
      pipeline_root or config.kubeflow.v2_pipeline_root, config.trainer.cluster
    )
    return _submit_v2(
      package, host, config.pipeline_name, version, cron, experiment, namespace, root
    )
  raise ValueError(f'target {target!r}: expected one of {", ".join(TARGETS)}')


def _submit_v1(package, host, name, version_name, cron, experiment_name, namespace):
  import kfp

  client = kfp.Client(host=host, namespace=namespace or 'kubeflow')
  pipeline_id = client.get_pipeline_id(name)
  if pipeline_id:
    version_id = client.upload_pipeline_version(
      str(package), pipeline_version_name=version_name, pipeline_id=pipeline_id
    ).id
  else:
    pipeline = client.upload_pipeline(str(package), pipeline_name=name)
    pipeline_id, version_id = pipeline.id, pipeline.default_version.id
  experiment = client.create_experiment(experiment_name, namespace=namespace)
  ids = {'pipeline_id': pipeline_id, 'pipeline_version_id': version_id}
  if cron:
    job = client.create_recurring_run(
      experiment.id,
      job_name=version_name,
      cron_expression=cron,
      version_id=version_id,
      max_concurrency=1,
      no_catchup=True,
    )
    return {**ids, 'recurring_run_id': job.id}
  run = client.run_pipeline(experiment.id, job_name=version_name, version_id=version_id)
  return {**ids, 'run_id': run.id}


def _submit_v2(package, host, name, version_name, cron, experiment_name, namespace, root):
  api = _RestApi(host)
  pipeline_id = api.pipeline_id(name, namespace)
  if pipeline_id:
    version_id = api.upload_version(package, pipeline_id, version_name)['pipeline_version_id']
  else:
    pipeline_id = api.upload(package, name, namespace)['pipeline_id']
    versions = api.get(
      f'/apis/v2beta1/pipelines/{pipeline_id}/versions?sort_by=created_at%20desc&page_size=1'
    )
    version_id = versions['pipeline_versions'][0]['pipeline_version_id']
  experiment_id = api.experiment(experiment_name, namespace)
  reference = {'pipeline_id': pipeline_id, 'pipeline_version_id': version_id}
  ids = dict(reference)
  # The backend reads the pipeline root from here, not from the spec.
  runtime_config = {'pipeline_root': root}
  if cron:
    job = api.post(
      '/apis/v2beta1/recurringruns',
      {
        'display_name': version_name,
        'experiment_id': experiment_id,
        'pipeline_version_reference': reference,
        'runtime_config': runtime_config,
        'mode': 'ENABLE',
        'max_concurrency': '1',
        'trigger': {'cron_schedule': {'cron': cron}},
        'no_catchup': True,
      },
    )
    return {**ids, 'recurring_run_id': job['recurring_run_id']}
  run = api.post(
    '/apis/v2beta1/runs',
    {
      'display_name': version_name,
      'experiment_id': experiment_id,
      'pipeline_version_reference': reference,
      'runtime_config': runtime_config,
    },
  )
  return {**ids, 'run_id': run['run_id']}


def kfp_cron(expression: str) -> str:
  """A cron expression as KFP (v1 and v2) reads it: six fields, seconds first
  (robfig/cron). A 5-field expression gets second 0; a 6-field one is kept."""
  fields = expression.split()
  if len(fields) == 5:
    return ' '.join(['0', *fields])
  if len(fields) == 6:
    return ' '.join(fields)
  raise ValueError(
    f'schedule {expression!r}: expected a cron expression of 5 fields '
    '(minute hour day month weekday), or 6 with seconds first'
  )


class _RestApi:
  """Just enough of KFP's v2beta1 REST API: JSON requests and a multipart upload."""

  def __init__(self, host: str):
    self._host = host.rstrip('/')

  def _send(self, method, path, body=None, headers=None):
    request = urllib.request.Request(
      self._host + path, data=body, method=method, headers=headers or {}
    )
    try:
      with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b'{}')
    except urllib.error.HTTPError as e:
      detail = e.read().decode(errors='replace')[:500]
      raise SubmitError(f'{method} {self._host + path}: HTTP {e.code}: {detail}') from None
    except urllib.error.URLError as e:
      raise SubmitError(f'{method} {self._host + path}: {e.reason}') from None

  def get(self, path):
    return self._send('GET', path)

  def post(self, path, payload: dict):
    return self._send(
      'POST', path, json.dumps(payload).encode(), {'Content-Type': 'application/json'}
    )

  def _multipart(self, path: str, package: pathlib.Path, query: dict) -> dict:
    boundary = uuid.uuid4().hex
    body = b''.join(
      [
        f'--{boundary}\r\nContent-Disposition: form-data; name="uploadfile"; '
        f'filename="{package.name}"\r\nContent-Type: application/x-yaml\r\n\r\n'.encode(),
        package.read_bytes(),
        f'\r\n--{boundary}--\r\n'.encode(),
      ]
    )
    return self._send(
      'POST',
      f'{path}?{urllib.parse.urlencode(query)}',
      body,
      {'Content-Type': f'multipart/form-data; boundary={boundary}'},
    )

  def upload(self, package: pathlib.Path, name: str, namespace: str | None) -> dict:
    """A new pipeline `name` with `package` as its first version."""
    return self._multipart(
      '/apis/v2beta1/pipelines/upload',
      package,
      {'name': name, 'display_name': name, **({'namespace': namespace} if namespace else {})},
    )

  def upload_version(self, package: pathlib.Path, pipeline_id: str, version: str) -> dict:
    return self._multipart(
      '/apis/v2beta1/pipelines/upload_version',
      package,
      {'pipelineid': pipeline_id, 'name': version, 'display_name': version},
    )

  @staticmethod
  def _named(display_name: str, namespace: str | None) -> str:
    predicate = {
      'predicates': [{'key': 'display_name', 'operation': 'EQUALS', 'string_value': display_name}]
    }
    return urllib.parse.urlencode(
      {'filter': json.dumps(predicate), **({'namespace': namespace} if namespace else {})}
    )

  def pipeline_id(self, name: str, namespace: str | None) -> str | None:
    """The id of the pipeline named `name`, or None."""
    found = self.get('/apis/v2beta1/pipelines?' + self._named(name, namespace))
    for pipeline in found.get('pipelines', []):
      return pipeline['pipeline_id']
    return None

  def experiment(self, display_name: str, namespace: str | None) -> str:
    """The id of the experiment named `display_name`, created if missing."""
    found = self.get('/apis/v2beta1/experiments?' + self._named(display_name, namespace))
    for experiment in found.get('experiments', []):
      return experiment['experiment_id']
    return self.post(
      '/apis/v2beta1/experiments',
      {'display_name': display_name, **({'namespace': namespace} if namespace else {})},
    )['experiment_id']


def default_output(config: Config, target: str) -> pathlib.Path:
  return config.output_root / 'kubeflow' / DEFAULT_FILES[target]


def kfp_host(config: Config, host: str | None) -> str:
  """The KFP host: --host, else kubeflow.host."""
  host = host or config.kubeflow.host
  if not host:
    raise ValueError('no KFP host: pass --host URL or set kubeflow.host')
  return host if '://' in host else 'http://' + host
