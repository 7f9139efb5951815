"""Kubeflow: both compile targets parsed and checked, and submission's requests.

Submission is checked against an HTTP server on 127.0.0.1 that records what
it receives and answers like the KFP API; this proves the client side only.
"""

import http.server
import json
import threading
import urllib.parse

import pytest
import yaml

from pipeline import kubeflow
from pipeline.config import ConfigError, load_config
from pipeline.pipeline import create_pipeline

IMAGE = 'registry.example/taxi-estimator:7'
ROOT = 'gs://bucket/tfx'
KUBEFLOW = [f'kubeflow.image={IMAGE}', f'kubeflow.pipeline_root={ROOT}',
            'kubeflow.serving_dir=/mnt/shared/serving', 'kubeflow.pvc=pipeline-data']


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
def v2(config, tmp_path_factory):
  path = kubeflow.compile_pipeline(config, 'kubeflow-v2', tmp_path_factory.mktemp('kf') / 'v2.yaml')
  return yaml.safe_load(path.read_text())


def test_v1_is_an_argo_workflow_of_every_component(v1, expected_edges):
  assert v1['apiVersion'] == 'argoproj.io/v1alpha1' and v1['kind'] == 'Workflow'
  templates = {t['name']: t for t in v1['spec']['templates']}
  (dag,) = [t['dag'] for t in templates.values() if 'dag' in t]
  tasks = {t['name']: sorted(t.get('dependencies') or []) for t in dag['tasks']}
  assert tasks == {name.lower(): [u.lower() for u in ups] for name, ups in expected_edges.items()}
  for name in tasks:
    container = templates[name]['container']
    assert container['image'] == IMAGE
    assert container['command'] == ['python', '-m', 'tfx.orchestration.kubeflow.container_entrypoint']
    assert {'name': 'shared', 'mountPath': '/mnt/shared'} in container['volumeMounts']
    ir = json.loads(container['args'][container['args'].index('--tfx_ir') + 1])
    (node,) = ir['nodes']
    assert node['pipelineNode']['executionOptions']['cachingOptions'] == {'enableCache': True}
  assert v1['spec']['arguments']['parameters'] == [{'name': 'pipeline-root', 'value': ROOT}]
  volumes = {v['name']: v for t in templates.values() for v in t.get('volumes', [])}
  assert volumes['shared']['persistentVolumeClaim'] == {'claimName': 'pipeline-data'}


def test_v2_spec_has_every_component_in_the_image_and_no_resolver(v2, expected_edges):
  tasks = v2['root']['dag']['tasks']
  assert {name: sorted(t.get('dependentTasks') or []) for name, t in tasks.items()} == expected_edges
  assert all(t['cachingOptions'] == {'enableCache': True} for t in tasks.values())
  executors = v2['deploymentSpec']['executors']
  assert set(executors) == {f'{name}_executor' for name in expected_edges}
  for executor in executors.values():
    assert set(executor) == {'container'}  # no resolver or importer executors
    assert executor['container']['image'] == IMAGE
    assert executor['container']['command'] == [
        'python', '-m', 'tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor']
  assert 'resolver' not in json.dumps(v2).lower()
  assert v2['defaultPipelineRoot'] == ROOT
  assert v2['pipelineInfo']['name'] == 'taxi-estimator'


def test_compiling_needs_cluster_locations(tmp_path):
  config = load_config(overrides=[f'kubeflow.image={IMAGE}', 'kubeflow.pipeline_root='])
  with pytest.raises(ConfigError, match="'kubeflow.pipeline_root'"):
    kubeflow.compile_pipeline(config, 'kubeflow', tmp_path / 'p.yaml')


class _KfpApi(http.server.BaseHTTPRequestHandler):
  """Records every request and answers like the KFP v1beta1/v2beta1 APIs."""
  requests: list = []

  def _answer(self):
    length = int(self.headers.get('Content-Length') or 0)
    url = urllib.parse.urlparse(self.path)
    self.requests.append({'method': self.command, 'path': url.path,
                          'query': urllib.parse.parse_qs(url.query),
                          'body': self.rfile.read(length) if length else b''})
    routes = {
        ('GET', '/apis/v1beta1/healthz'): {'multi_user': False},
        ('POST', '/apis/v1beta1/pipelines/upload'): {'id': 'p1', 'name': 'taxi'},
        ('GET', '/apis/v1beta1/experiments'): {},
        ('POST', '/apis/v1beta1/experiments'): {'id': 'e1', 'name': 'Default'},
        ('POST', '/apis/v1beta1/runs'): {'run': {'id': 'r1', 'name': 'taxi'}},
        ('POST', '/apis/v1beta1/jobs'): {'id': 'j1', 'name': 'taxi'},
        ('POST', '/apis/v2beta1/pipelines/upload'): {'pipeline_id': 'p2'},
        ('GET', '/apis/v2beta1/pipelines/p2/versions'): {
            'pipeline_versions': [{'pipeline_version_id': 'v2'}]},
        ('GET', '/apis/v2beta1/experiments'): {},
        ('POST', '/apis/v2beta1/experiments'): {'experiment_id': 'e2'},
        ('POST', '/apis/v2beta1/runs'): {'run_id': 'r2'},
        ('POST', '/apis/v2beta1/recurringruns'): {'recurring_run_id': 'j2'},
    }
    answer = routes.get((self.command, url.path))
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
  _KfpApi.requests = []
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _KfpApi)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f'http://127.0.0.1:{server.server_port}', _KfpApi.requests
  server.shutdown()


def _calls(requests):
  return [(r['method'], r['path']) for r in requests]


@pytest.fixture
def package(tmp_path):
  path = tmp_path / 'pipeline.yaml'
  path.write_text('apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n')
  return path


def test_v1_submit_uploads_and_starts_a_run(config, kfp_api, package):
  host, requests = kfp_api
  ids = kubeflow.submit(config, 'kubeflow', package, host)
  assert ids == {'pipeline_id': 'p1', 'run_id': 'r1'}
  assert _calls(requests) == [('GET', '/apis/v1beta1/healthz'),
                              ('POST', '/apis/v1beta1/pipelines/upload'),
                              ('GET', '/apis/v1beta1/experiments'),
                              ('POST', '/apis/v1beta1/experiments'),
                              ('POST', '/apis/v1beta1/runs')]
  assert b'kind: Workflow' in requests[1]['body']
  run = json.loads(requests[-1]['body'])
  assert run['pipeline_spec']['pipeline_id'] == 'p1'
  assert {'key': {'type': 'EXPERIMENT', 'id': 'e1'}, 'relationship': 'OWNER'} in run['resource_references']


def test_v1_schedule_creates_a_recurring_run(config, kfp_api, package):
  host, requests = kfp_api
  ids = kubeflow.submit(config, 'kubeflow', package, host, schedule='0 0 3 * * *')
  assert ids == {'pipeline_id': 'p1', 'recurring_run_id': 'j1'}
  assert _calls(requests)[-1] == ('POST', '/apis/v1beta1/jobs')
  job = json.loads(requests[-1]['body'])
  assert job['trigger']['cron_schedule']['cron'] == '0 0 3 * * *'
  assert job['enabled'] is True and int(job['max_concurrency']) == 1
  assert job['pipeline_spec']['pipeline_id'] == 'p1'


def test_v2_submit_uses_the_v2beta1_rest_api(config, kfp_api, package):
  host, requests = kfp_api
  ids = kubeflow.submit(config, 'kubeflow-v2', package, host)
  assert ids == {'pipeline_id': 'p2', 'pipeline_version_id': 'v2', 'run_id': 'r2'}
  assert _calls(requests) == [('POST', '/apis/v2beta1/pipelines/upload'),
                              ('GET', '/apis/v2beta1/pipelines/p2/versions'),
                              ('GET', '/apis/v2beta1/experiments'),
                              ('POST', '/apis/v2beta1/experiments'),
                              ('POST', '/apis/v2beta1/runs')]
  assert b'name="uploadfile"' in requests[0]['body'] and b'kind: Workflow' in requests[0]['body']
  assert requests[0]['query']['name'][0].startswith('taxi-estimator-')
  run = json.loads(requests[-1]['body'])
  assert run['pipeline_version_reference'] == {'pipeline_id': 'p2', 'pipeline_version_id': 'v2'}
  assert run['experiment_id'] == 'e2'


def test_v2_schedule_creates_a_recurring_run(config, kfp_api, package):
  host, requests = kfp_api
  ids = kubeflow.submit(config, 'kubeflow-v2', package, host, schedule='30 2 * * *')
  assert ids['recurring_run_id'] == 'j2'
  assert _calls(requests)[-1] == ('POST', '/apis/v2beta1/recurringruns')
  job = json.loads(requests[-1]['body'])
  assert job['trigger'] == {'cron_schedule': {'cron': '0 30 2 * * *'}}  # KFP cron has seconds
  assert job['mode'] == 'ENABLE'
  assert job['pipeline_version_reference'] == {'pipeline_id': 'p2', 'pipeline_version_id': 'v2'}


def test_submit_errors_name_the_request(config, package):
  with pytest.raises(kubeflow.SubmitError, match='POST http://127.0.0.1:9/apis/v2beta1/pipelines/upload'):
    kubeflow.submit(config, 'kubeflow-v2', package, 'http://127.0.0.1:9')
  with pytest.raises(ValueError, match='5 \\(or 6\\) fields'):
    kubeflow._kfp_cron('daily')
