"""Kubeflow: both compile targets parsed and checked, and submission's requests.

Submission is checked against an HTTP server on 127.0.0.1 that records what
it receives and answers like the KFP API; this proves the client side only.
"""

import http.server
import json
import re
import subprocess
import threading
import urllib.parse

import pytest
import yaml

from pipeline.config import PROJECT_ROOT, ConfigError, load_config
from pipeline.definition import kubeflow
from pipeline.definition.pipeline import create_pipeline

IMAGE = 'registry.example/taxi-estimator:7'
ROOT = 'gs://bucket/tfx'
KUBEFLOW = [
  f'kubeflow.image={IMAGE}',
  f'kubeflow.pipeline_root={ROOT}',
  'kubeflow.serving_dir=/mnt/shared/serving',
  'kubeflow.pvc=pipeline-data',
]


@pytest.fixture(scope='module')
def config():
  return load_config(overrides=KUBEFLOW)


@pytest.fixture(scope='module')
def expected_edges(config):
  """Each component's upstream component ids, from the pipeline itself."""
  pipeline = create_pipeline(config, config.kubeflow_locations())
  return {c.id: sorted(u.id for u in c.upstream_nodes) for c in pipeline.components}


@pytest.fixture(scope='module')
def v1(config, tmp_path_factory):
  path = kubeflow.compile_pipeline(config, 'kubeflow', tmp_path_factory.mktemp('kf') / 'v1.yaml')
  return yaml.safe_load(path.read_text())


@pytest.fixture(scope='module')
def v2_documents(config, tmp_path_factory):
  path = kubeflow.compile_pipeline(config, 'kubeflow-v2', tmp_path_factory.mktemp('kf') / 'v2.yaml')
  return list(yaml.safe_load_all(path.read_text()))


@pytest.fixture(scope='module')
def v2(v2_documents):
  return v2_documents[0]


def test_v1_is_an_argo_workflow_of_every_component(v1, expected_edges):
  assert v1['apiVersion'] == 'argoproj.io/v1alpha1' and v1['kind'] == 'Workflow'
  templates = {t['name']: t for t in v1['spec']['templates']}
  (dag,) = [t['dag'] for t in templates.values() if 'dag' in t]
  tasks = {t['name']: sorted(t.get('dependencies') or []) for t in dag['tasks']}
  assert tasks == {name.lower(): [u.lower() for u in ups] for name, ups in expected_edges.items()}
  for name in tasks:
    container = templates[name]['container']
    assert container['image'] == IMAGE
    assert container['command'] == [
      'python',
      '-m',
      'tfx.orchestration.kubeflow.container_entrypoint',
    ]
    assert {'name': 'shared', 'mountPath': '/mnt/shared'} in container['volumeMounts']
    ir = json.loads(container['args'][container['args'].index('--tfx_ir') + 1])
    (node,) = ir['nodes']
    assert node['pipelineNode']['executionOptions']['cachingOptions'] == {'enableCache': True}
  assert v1['spec']['arguments']['parameters'] == [{'name': 'pipeline-root', 'value': ROOT}]
  volumes = {v['name']: v for t in templates.values() for v in t.get('volumes', [])}
  assert volumes['shared']['persistentVolumeClaim'] == {'claimName': 'pipeline-data'}


def test_v2_spec_has_every_component_in_the_image_and_no_resolver(v2, expected_edges):
  tasks = v2['root']['dag']['tasks']
  assert {
    name: sorted(t.get('dependentTasks') or []) for name, t in tasks.items()
  } == expected_edges
  executors = v2['deploymentSpec']['executors']
  assert set(executors) == {f'{name}_executor' for name in expected_edges}
  for executor in executors.values():
    assert set(executor) == {'container'}  # no resolver or importer executors
    assert executor['container']['image'] == IMAGE
    # Ours, over TFX's v2 entrypoint (which fails on OSS KFP 2.x; tests/test_kfp_backend.py).
    assert executor['container']['command'] == list(kubeflow.ENTRYPOINT)
    args = executor['container']['args']
    assert args[args.index('--kfp_state') + 1] == f'{ROOT}/kfp-state/taxi-estimator.json'
    assert len(args[args.index('--kfp_spec_hash') + 1]) == 64
  assert 'resolver' not in json.dumps(v2).lower()
  assert v2['pipelineInfo']['name'] == 'taxi-estimator'


# The KFP 2.x backend's upload and run rules (kubeflow/pipelines backend,
# tags 2.0.0 to 2.17.0: v2_template.go, driver/, component/).
_K8S_NAME = re.compile(r'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')


def _parameters(spec):
  """Every task input parameter of the spec."""
  for component in [spec['root'], *spec['components'].values()]:
    for task in (component.get('dag') or {}).get('tasks', {}).values():
      yield from (task.get('inputs') or {}).get('parameters', {}).values()


def test_v2_spec_passes_the_kfp2_upload_rules(v2):
  from google.protobuf import json_format
  from kfp.pipeline_spec import pipeline_spec_pb2

  assert v2['schemaVersion'] == '2.1.0'  # "KFP only supports schema version 2.1.0"
  # Parses strictly (protojson refuses unknown fields) into the PipelineSpec message.
  json_format.ParseDict(v2, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
  assert _K8S_NAME.fullmatch(v2['pipelineInfo']['name'])
  parameters = list(_parameters(v2))
  assert len(parameters) > 20
  for parameter in parameters:  # the `constant` form: the driver refuses `constantValue`
    assert set(parameter) == {'runtimeValue'} and set(parameter['runtimeValue']) == {'constant'}
  assert 'constantValue' not in json.dumps(v2)
  # No pre-cache-check hook (the backend never runs one; span resolution is the executor's).
  assert 'lifecycle' not in json.dumps(v2) and 'preCacheCheck' not in json.dumps(v2)
  # The backend reads the root from the run, not the spec: it is given at submission.
  assert 'defaultPipelineRoot' not in v2


def test_v2_spec_loads_with_the_kfp2_sdk(kfp2_python, config, tmp_path):
  path = kubeflow.compile_pipeline(config, 'kubeflow-v2', tmp_path / 'v2.yaml')
  check = subprocess.run(
    [str(kfp2_python), str(PROJECT_ROOT / 'tests' / 'kfp2' / 'check_spec.py'), str(path)],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert check.returncode == 0, check.stderr[-3000:]
  loaded = json.loads(check.stdout)
  assert loaded['schema_version'] == '2.1.0' and loaded['name'] == 'taxi-estimator'
  assert len(loaded['tasks']) == 8 and loaded['platform_spec']
  assert len(loaded['pvc_mounts']) == 8
  assert loaded['resources']['Trainer_executor'] == {
    'cpuRequest': 2.0,
    'cpuLimit': 2.0,
    'memoryRequest': 8.0,
    'memoryLimit': 8.0,
  }
  assert all(
    mounts == [['pipeline-data', '/mnt/shared']] for mounts in loaded['pvc_mounts'].values()
  )


def test_v2_cache_cannot_hide_new_data(v2):
  tasks = v2['root']['dag']['tasks']
  assert tasks['CsvExampleGen']['cachingOptions'] == {'enableCache': False}
  assert all(
    t['cachingOptions'] == {'enableCache': True}
    for name, t in tasks.items()
    if name != 'CsvExampleGen'
  )
  # The span window is resolved by the executor itself (KFP 2.x runs no TFX driver).
  params = tasks['CsvExampleGen']['inputs']['parameters']
  assert params['span_window'] == {'runtimeValue': {'constant': 1.0}}
  assert params['input_base'] == {'runtimeValue': {'constant': '/mnt/shared/data/taxi'}}


def test_v2_mounts_the_pvc_in_every_task_through_the_platform_spec(v2_documents):
  spec, platform = v2_documents
  executors = platform['platforms']['kubernetes']['deploymentSpec']['executors']
  assert set(executors) == set(spec['deploymentSpec']['executors'])
  for config in executors.values():
    assert config == {'pvcMount': [{'constant': 'pipeline-data', 'mountPath': '/mnt/shared'}]}


def test_v2_without_a_pvc_is_one_document(tmp_path):
  config = load_config(
    overrides=[*KUBEFLOW, 'kubeflow.pvc=', 'kubeflow.serving_dir=/mnt/nfs/serving']
  )
  path = kubeflow.compile_pipeline(config, 'kubeflow-v2', tmp_path / 'v2.yaml')
  assert len(list(yaml.safe_load_all(path.read_text()))) == 1


@pytest.mark.parametrize(
  'run_dir',
  [
    'gs://bucket/root/taxi-estimator/run-1/Trainer/model_run',  # KFP v2: `_`
    '/mnt/shared/pipeline/Trainer/model_run/17',  # KFP v1: a number
    '/x/' + 'Very_Long.Name' * 10,
  ],
)
def test_tfjob_names_are_valid_kubernetes_names(run_dir):
  from components import tfjob

  name = tfjob.job_name(run_dir)
  assert re.fullmatch(r'[a-z]([-a-z0-9]*[a-z0-9])?', name) and len(name) <= tfjob.MAX_JOB_NAME
  assert len(f'{name}-worker-10') <= 63
  assert tfjob.job_name(run_dir + '2') != name


def test_compiling_needs_cluster_locations(tmp_path):
  config = load_config(overrides=[f'kubeflow.image={IMAGE}', 'kubeflow.pipeline_root='])
  with pytest.raises(ConfigError, match=re.escape("'kubeflow.pipeline_root'")):
    kubeflow.compile_pipeline(config, 'kubeflow', tmp_path / 'p.yaml')


class _KfpApi(http.server.BaseHTTPRequestHandler):
  """Records every request and answers like the KFP v1beta1/v2beta1 APIs; a
  pipeline uploaded once is found by name afterwards."""

  requests: list = []
  pipelines: set = set()

  def _answer(self):
    length = int(self.headers.get('Content-Length') or 0)
    url = urllib.parse.urlparse(self.path)
    self.requests.append(
      {
        'method': self.command,
        'path': url.path,
        'query': urllib.parse.parse_qs(url.query),
        'body': self.rfile.read(length) if length else b'',
      }
    )
    v1_found = (
      {'pipelines': [{'id': 'p1', 'name': 'taxi-estimator'}]} if 'v1' in self.pipelines else {}
    )
    v2_found = {'pipelines': [{'pipeline_id': 'p2'}]} if 'v2' in self.pipelines else {}
    routes = {
      ('GET', '/apis/v1beta1/healthz'): {'multi_user': False},
      ('GET', '/apis/v1beta1/pipelines'): v1_found,
      ('POST', '/apis/v1beta1/pipelines/upload'): {
        'id': 'p1',
        'name': 'taxi-estimator',
        'default_version': {'id': 'v1-first'},
      },
      ('POST', '/apis/v1beta1/pipelines/upload_version'): {'id': 'v1-next', 'name': 'x'},
      ('GET', '/apis/v1beta1/experiments'): {},
      ('POST', '/apis/v1beta1/experiments'): {'id': 'e1', 'name': 'Default'},
      ('POST', '/apis/v1beta1/runs'): {'run': {'id': 'r1', 'name': 'taxi'}},
      ('POST', '/apis/v1beta1/jobs'): {'id': 'j1', 'name': 'taxi'},
      ('GET', '/apis/v2beta1/pipelines'): v2_found,
      ('POST', '/apis/v2beta1/pipelines/upload'): {'pipeline_id': 'p2'},
      ('POST', '/apis/v2beta1/pipelines/upload_version'): {'pipeline_version_id': 'v2-next'},
      ('GET', '/apis/v2beta1/pipelines/p2/versions'): {
        'pipeline_versions': [{'pipeline_version_id': 'v2-first'}]
      },
      ('GET', '/apis/v2beta1/experiments'): {},
      ('POST', '/apis/v2beta1/experiments'): {'experiment_id': 'e2'},
      ('POST', '/apis/v2beta1/runs'): {'run_id': 'r2'},
      ('POST', '/apis/v2beta1/recurringruns'): {'recurring_run_id': 'j2'},
    }
    answer = routes.get((self.command, url.path))
    if self.command == 'POST' and url.path.endswith('/pipelines/upload'):
      self.pipelines.add(url.path.split('/')[2][:2])
    payload = json.dumps(answer if answer is not None else {'error': 'no route'}).encode()
    self.send_response(200 if answer is not None else 404)
    self.send_header('Content-Type', 'application/json')
    self.send_header('Content-Length', str(len(payload)))
    self.end_headers()
    self.wfile.write(payload)

  do_GET = do_POST = _answer

  def log_message(self, *args):
    pass


@pytest.fixture
def kfp_api():
  _KfpApi.requests, _KfpApi.pipelines = [], set()
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _KfpApi)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f'http://127.0.0.1:{server.server_port}', _KfpApi.requests
  server.shutdown()


def _calls(requests):
  return [(r['method'], r['path']) for r in requests if r['path'] != '/apis/v1beta1/healthz']


@pytest.fixture
def package(tmp_path):
  path = tmp_path / 'pipeline.yaml'
  path.write_text('apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n')
  return path


def test_v1_submit_uploads_one_pipeline_then_new_versions(config, kfp_api, package):
  host, requests = kfp_api
  ids = kubeflow.submit(config, 'kubeflow', package, host)
  assert ids == {'pipeline_id': 'p1', 'pipeline_version_id': 'v1-first', 'run_id': 'r1'}
  assert _calls(requests) == [
    ('GET', '/apis/v1beta1/pipelines'),
    ('POST', '/apis/v1beta1/pipelines/upload'),
    ('GET', '/apis/v1beta1/experiments'),
    ('POST', '/apis/v1beta1/experiments'),
    ('POST', '/apis/v1beta1/runs'),
  ]
  upload = next(r for r in requests if r['path'].endswith('/upload'))
  assert b'kind: Workflow' in upload['body'] and upload['query']['name'] == ['taxi-estimator']
  run = json.loads(requests[-1]['body'])
  assert {'key': {'type': 'PIPELINE_VERSION', 'id': 'v1-first'}, 'relationship': 'CREATOR'} in run[
    'resource_references'
  ]
  assert {'key': {'type': 'EXPERIMENT', 'id': 'e1'}, 'relationship': 'OWNER'} in run[
    'resource_references'
  ]
  requests.clear()
  again = kubeflow.submit(config, 'kubeflow', package, host)
  assert again['pipeline_id'] == 'p1' and again['pipeline_version_id'] == 'v1-next'
  version = next(r for r in requests if r['path'].endswith('/upload_version'))
  assert version['query']['pipelineid'] == ['p1']
  assert version['query']['name'][0].startswith('taxi-estimator-')


@pytest.mark.parametrize(
  'schedule, cron',
  [
    ('0 3 * * *', '0 0 3 * * *'),  # daily at 03:00
    ('30 0 3 * * *', '30 0 3 * * *'),
  ],
)
def test_v1_schedule_is_converted_to_kfps_six_field_cron(config, kfp_api, package, schedule, cron):
  host, requests = kfp_api
  ids = kubeflow.submit(config, 'kubeflow', package, host, schedule=schedule)
  assert ids['recurring_run_id'] == 'j1'
  assert _calls(requests)[-1] == ('POST', '/apis/v1beta1/jobs')
  job = json.loads(requests[-1]['body'])
  assert job['trigger']['cron_schedule']['cron'] == cron
  assert job['enabled'] is True and int(job['max_concurrency']) == 1 and job['no_catchup']
  assert {'key': {'type': 'PIPELINE_VERSION', 'id': 'v1-first'}, 'relationship': 'CREATOR'} in job[
    'resource_references'
  ]


def test_v1_multi_user_experiment_has_the_namespace(config, kfp_api, package):
  host, requests = kfp_api
  kubeflow.submit(config, 'kubeflow', package, host, namespace='team-a')
  experiment = json.loads(
    next(r for r in requests if r['path'] == '/apis/v1beta1/experiments' and r['method'] == 'POST')[
      'body'
    ]
  )
  assert {'key': {'type': 'NAMESPACE', 'id': 'team-a'}, 'relationship': 'OWNER'} in experiment[
    'resource_references'
  ]


def test_v2_submit_passes_the_pipeline_root_and_versions_one_pipeline(config, kfp_api, package):
  host, requests = kfp_api
  ids = kubeflow.submit(config, 'kubeflow-v2', package, host, pipeline_root='gs://b/root')
  assert ids == {'pipeline_id': 'p2', 'pipeline_version_id': 'v2-first', 'run_id': 'r2'}
  assert _calls(requests) == [
    ('GET', '/apis/v2beta1/pipelines'),
    ('POST', '/apis/v2beta1/pipelines/upload'),
    ('GET', '/apis/v2beta1/pipelines/p2/versions'),
    ('GET', '/apis/v2beta1/experiments'),
    ('POST', '/apis/v2beta1/experiments'),
    ('POST', '/apis/v2beta1/runs'),
  ]
  assert b'name="uploadfile"' in requests[1]['body'] and b'kind: Workflow' in requests[1]['body']
  assert requests[1]['query']['name'] == ['taxi-estimator']
  run = json.loads(requests[-1]['body'])
  assert run['pipeline_version_reference'] == {
    'pipeline_id': 'p2',
    'pipeline_version_id': 'v2-first',
  }
  assert run['experiment_id'] == 'e2'
  assert run['runtime_config'] == {'pipeline_root': 'gs://b/root'}
  requests.clear()
  again = kubeflow.submit(config, 'kubeflow-v2', package, host, pipeline_root='gs://b/root')
  assert again['pipeline_version_id'] == 'v2-next'
  assert _calls(requests)[:2] == [
    ('GET', '/apis/v2beta1/pipelines'),
    ('POST', '/apis/v2beta1/pipelines/upload_version'),
  ]
  assert requests[1]['query']['pipelineid'] == ['p2']


def test_v2_schedule_creates_a_recurring_run(config, kfp_api, package):
  host, requests = kfp_api
  ids = kubeflow.submit(
    config,
    'kubeflow-v2',
    package,
    host,
    schedule='30 2 * * *',
    namespace='team-a',
    pipeline_root='s3://b/root',
  )
  assert ids['recurring_run_id'] == 'j2'
  assert _calls(requests)[-1] == ('POST', '/apis/v2beta1/recurringruns')
  job = json.loads(requests[-1]['body'])
  assert job['trigger'] == {'cron_schedule': {'cron': '0 30 2 * * *'}}  # KFP cron has seconds
  assert job['mode'] == 'ENABLE' and job['no_catchup'] is True
  assert job['runtime_config'] == {'pipeline_root': 's3://b/root'}
  experiment = [r for r in requests if r['path'] == '/apis/v2beta1/experiments']
  assert experiment[0]['query']['namespace'] == ['team-a']
  assert json.loads(experiment[1]['body']) == {'display_name': 'Default', 'namespace': 'team-a'}


@pytest.mark.parametrize(
  'root, needle',
  [
    ('', 'needs a pipeline root at submission'),
    ('/mnt/shared/pipeline', 'object store only'),
    ('mem://mlpipeline/v2', 'object store only'),  # KFP takes it; no pod can reach it
  ],
)
def test_v2_submit_refuses_a_missing_or_unusable_pipeline_root(config, package, root, needle):
  with pytest.raises(ValueError, match=needle):
    kubeflow.submit(config, 'kubeflow-v2', package, 'http://127.0.0.1:9', pipeline_root=root)


def test_v2_cluster_training_needs_a_root_its_replicas_reach():
  assert kubeflow.check_v2_pipeline_root('gs://b/r', 'kubeflow') == 'gs://b/r'
  assert kubeflow.check_v2_pipeline_root('s3://b/r') == 's3://b/r'
  with pytest.raises(ValueError, match="replicas read the Trainer's inputs"):
    kubeflow.check_v2_pipeline_root('s3://b/r', 'kubeflow')


# The next machine's worth of data (docs/performance.md, "Beyond one
# machine"): the data-processing components on Dataflow, the Trainer a TFJob.
SCALE_OUT = [
  *KUBEFLOW,
  'kubeflow.v2_pipeline_root=gs://bucket/tfx2',
  'beam.runner=custom',
  (
    'beam.args=[--runner=DataflowRunner, --project=my-project, --region=us-central1, '
    '--temp_location=gs://bucket/tmp, --experiments=use_runner_v2]'
  ),
  'trainer.cluster=kubeflow',
  'trainer.workers=2',
  'trainer.parameter_servers=1',
  'trainer.shared_dir=gs://bucket/models',
]


def test_the_scale_out_config_compiles_with_dataflow_for_the_beam_components(tmp_path):
  config = load_config(overrides=SCALE_OUT)
  spec = next(
    yaml.safe_load_all(
      kubeflow.compile_pipeline(config, 'kubeflow-v2', tmp_path / 'v2.yaml').read_text()
    )
  )
  on_dataflow = {
    name.removesuffix('_executor')
    for name, executor in spec['deploymentSpec']['executors'].items()
    if '--runner=DataflowRunner' in json.dumps(executor)
  }
  assert on_dataflow == {'CsvExampleGen', 'StatisticsGen', 'Transform'}


def test_cron_conversion():
  assert kubeflow.kfp_cron('0 3 * * *') == '0 0 3 * * *'
  assert kubeflow.kfp_cron('*/15 * * * 1-5') == '0 */15 * * * 1-5'
  assert kubeflow.kfp_cron('15  0 3 * * *') == '15 0 3 * * *'
  for bad in ('daily', '* * * *', '0 0 0 3 * * *'):
    with pytest.raises(ValueError, match='5 fields'):
      kubeflow.kfp_cron(bad)


def test_submit_errors_name_the_request(config, package):
  with pytest.raises(
    kubeflow.SubmitError, match=re.escape('GET http://127.0.0.1:9/apis/v2beta1/pipelines')
  ):
    kubeflow.submit(config, 'kubeflow-v2', package, 'http://127.0.0.1:9', pipeline_root='gs://b/r')
