"""Kubeflow Pipelines: compile `create_pipeline(config)` for KFP v1 or v2, and submit it.

Compiling adds only the image, the cluster-side locations, Beam options and
the PVC mount; the wiring is `create_pipeline`'s. Submission uses the kfp
1.8 client for v1 (it comes with `tfx[kfp]`) and the KFP v2 REST API for v2,
because kfp 2.x clients conflict with tfx 1.15's pins.
"""

import json
import pathlib
import urllib.error
import urllib.parse
import urllib.request
import uuid

from components.cluster import SHARED_VOLUME
from pipeline.config import Config

TARGETS = ('kubeflow', 'kubeflow-v2')
DEFAULT_FILES = {'kubeflow': 'pipeline-v1.yaml', 'kubeflow-v2': 'pipeline-v2.yaml'}


def _pipeline(config: Config):
  from pipeline.pipeline import create_pipeline
  from pipeline.runners import add_beam_args, beam_args

  pipeline = create_pipeline(config, config.kubeflow_locations())
  # auto measures local input, which is not what the pods read: it means in-process here.
  # A worker pool for portable/process is a local-machine arrangement.
  if config.beam.runner == 'portable' and config.beam.environment == 'process':
    raise ValueError('beam.environment=process starts a local worker pool; on Kubeflow use '
                     'beam.runner=custom with your cluster\'s runner options')
  add_beam_args(pipeline, beam_args(config) if config.beam.runner != 'auto' else [])
  return pipeline


def compile_pipeline(config: Config, target: str, output: pathlib.Path) -> pathlib.Path:
  """Writes the pipeline for `target` ('kubeflow': Argo workflow for KFP v1,
  'kubeflow-v2': KFP v2 pipeline spec) to `output`, a .yaml file."""
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
    if config.kubeflow.pvc:
      operators.append(onprem.mount_pvc(config.kubeflow.pvc, SHARED_VOLUME, config.kubeflow.mount_path))
    runner = v1.KubeflowDagRunner(
        output_dir=str(output.parent), output_filename=output.name,
        config=v1.KubeflowDagRunnerConfig(
            kubeflow_metadata_config=v1.get_default_kubeflow_metadata_config(),
            tfx_image=config.kubeflow.image, pipeline_operator_funcs=operators))
  else:
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as v2

    runner = v2.KubeflowV2DagRunner(
        config=v2.KubeflowV2DagRunnerConfig(default_image=config.kubeflow.image),
        output_dir=str(output.parent), output_filename=output.name)
  runner.run(pipeline)
  if target == 'kubeflow-v2':
    _set_default_pipeline_root(output, config.kubeflow_locations().pipeline_root)
  return output


def _set_default_pipeline_root(spec_file: pathlib.Path, pipeline_root: str):
  """TFX writes the pipeline root only into the PipelineJob, which a YAML spec
  omits; KFP v2 backends read `defaultPipelineRoot` from the spec itself."""
  import yaml

  text = spec_file.read_text()
  header = ''.join(line for line in text.splitlines(keepends=True) if line.startswith('#'))
  spec = yaml.safe_load(text)
  spec['defaultPipelineRoot'] = pipeline_root
  spec_file.write_text(header + yaml.safe_dump(spec, sort_keys=True))


class SubmitError(RuntimeError):
  """The KFP API refused a request; the message has the URL and the server's answer."""


def submit(config: Config, target: str, package: pathlib.Path, host: str,
           schedule: str | None = None, experiment: str = 'Default') -> dict:
  """Uploads `package` and starts a run, or a recurring run if `schedule` (cron) is given.

  Returns the ids of what was created: pipeline, version (v2), run or recurring run.
  """
  name = f'{config.pipeline_name}-{uuid.uuid4().hex[:6]}'
  if target == 'kubeflow':
    return _submit_v1(package, host, name, schedule, experiment)
  if target == 'kubeflow-v2':
    return _submit_v2(package, host, name, schedule, experiment)
  raise ValueError(f'target {target!r}: expected one of {", ".join(TARGETS)}')


def _submit_v1(package, host, name, schedule, experiment_name):
  import kfp

  client = kfp.Client(host=host)
  pipeline = client.upload_pipeline(str(package), pipeline_name=name)
  experiment = client.create_experiment(experiment_name)
  if schedule:
    job = client.create_recurring_run(
        experiment.id, job_name=name, cron_expression=schedule, pipeline_id=pipeline.id,
        max_concurrency=1)
    return {'pipeline_id': pipeline.id, 'recurring_run_id': job.id}
  run = client.run_pipeline(experiment.id, job_name=name, pipeline_id=pipeline.id)
  return {'pipeline_id': pipeline.id, 'run_id': run.id}


def _submit_v2(package, host, name, schedule, experiment_name):
  api = _RestApi(host)
  pipeline = api.upload(package, name)
  versions = api.get(f'/apis/v2beta1/pipelines/{pipeline["pipeline_id"]}/versions'
                     '?sort_by=created_at%20desc&page_size=1')
  version_id = versions['pipeline_versions'][0]['pipeline_version_id']
  experiment_id = api.experiment(experiment_name)
  reference = {'pipeline_id': pipeline['pipeline_id'], 'pipeline_version_id': version_id}
  ids = {'pipeline_id': pipeline['pipeline_id'], 'pipeline_version_id': version_id}
  if schedule:
    job = api.post('/apis/v2beta1/recurringruns', {
        'display_name': name, 'experiment_id': experiment_id,
        'pipeline_version_reference': reference, 'mode': 'ENABLE', 'max_concurrency': '1',
        # KFP's cron has a seconds field; a 5-field expression gets '0' seconds.
        'trigger': {'cron_schedule': {'cron': _kfp_cron(schedule)}}, 'no_catchup': True})
    return {**ids, 'recurring_run_id': job['recurring_run_id']}
  run = api.post('/apis/v2beta1/runs', {
      'display_name': name, 'experiment_id': experiment_id,
      'pipeline_version_reference': reference})
  return {**ids, 'run_id': run['run_id']}


def _kfp_cron(expression: str) -> str:
  fields = expression.split()
  if len(fields) == 5:
    return ' '.join(['0', *fields])
  if len(fields) == 6:
    return expression
  raise ValueError(f'schedule {expression!r}: expected a cron expression of 5 (or 6) fields')


class _RestApi:
  """Just enough of KFP's v2beta1 REST API: JSON requests and a multipart upload."""

  def __init__(self, host: str):
    self._host = host.rstrip('/')

  def _send(self, method, path, body=None, headers=None):
    request = urllib.request.Request(self._host + path, data=body, method=method,
                                     headers=headers or {})
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
    return self._send('POST', path, json.dumps(payload).encode(),
                      {'Content-Type': 'application/json'})

  def upload(self, package: pathlib.Path, name: str) -> dict:
    boundary = uuid.uuid4().hex
    body = b''.join([
        f'--{boundary}\r\nContent-Disposition: form-data; name="uploadfile"; '
        f'filename="{package.name}"\r\nContent-Type: application/x-yaml\r\n\r\n'.encode(),
        package.read_bytes(), f'\r\n--{boundary}--\r\n'.encode()])
    query = urllib.parse.urlencode({'name': name, 'display_name': name})
    return self._send('POST', f'/apis/v2beta1/pipelines/upload?{query}', body,
                      {'Content-Type': f'multipart/form-data; boundary={boundary}'})

  def experiment(self, display_name: str) -> str:
    """The id of the experiment named `display_name`, created if missing."""
    predicate = {'predicates': [{'key': 'display_name', 'operation': 'EQUALS',
                                 'string_value': display_name}]}
    found = self.get('/apis/v2beta1/experiments?' + urllib.parse.urlencode(
        {'filter': json.dumps(predicate)}))
    for experiment in found.get('experiments', []):
      return experiment['experiment_id']
    return self.post('/apis/v2beta1/experiments', {'display_name': display_name})['experiment_id']


def default_output(config: Config, target: str) -> pathlib.Path:
  return config.output_root / 'kubeflow' / DEFAULT_FILES[target]


def kfp_host(config: Config, host: str | None) -> str:
  """The KFP host: --host, else kubeflow.host."""
  host = host or config.kubeflow.host
  if not host:
    raise ValueError('no KFP host: pass --host URL or set kubeflow.host')
  return host if '://' in host else 'http://' + host

