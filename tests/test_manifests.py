"""What a cluster needs: `pipeline manifests`, task and replica resources, the Trainer's API use.

Objects are validated against Kubernetes' own OpenAPI schemas
(kubernetes-validate) for KUBERNETES_VERSION, and TFJobs against
training-operator's typed models (tests/kfp2/check_tfjob.py).
"""

import contextlib
import json
import re
import subprocess

import kubernetes_validate
import pytest
import yaml

from components import cluster as cluster_lib
from components import contract, tfjob
from components.ids import ALL as COMPONENTS
from pipeline import cli
from pipeline.config import PROJECT_ROOT, ConfigError, load_config
from pipeline.definition import kubeflow, manifests
from pipeline.record import EXIT_FAILED

KUBERNETES_VERSION = '1.31'
KUBEFLOW = [
  'kubeflow.image=registry.example/taxi-estimator:7',
  'kubeflow.pipeline_root=gs://bucket/tfx',
  'kubeflow.data_root=/mnt/shared/data/taxi',
  'kubeflow.schema_file=/pipeline/data/schema/schema.pbtxt',
]
TFJOB = ['trainer.cluster=kubeflow', 'trainer.shared_dir=/mnt/shared/models']


def _validate(objects):
  for obj in objects:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_default_needs_only_the_pvc_in_kfps_namespace():
  objects = manifests.cluster_manifests(load_config())
  _validate(objects)
  (pvc,) = objects
  assert pvc['kind'] == 'PersistentVolumeClaim'
  assert pvc['metadata']['name'] == 'taxi-pipeline' and pvc['metadata']['namespace'] == 'kubeflow'
  assert pvc['spec'] == {
    'accessModes': ['ReadWriteMany'],
    'resources': {'requests': {'storage': '20Gi'}},
  }


def test_a_kubeflow_cluster_gets_exactly_the_trainers_verbs():
  config = load_config(overrides=[*TFJOB, 'kubeflow.storage_class=nfs'])
  objects = manifests.cluster_manifests(config)
  _validate(objects)
  pvc, role, binding = objects
  assert pvc['spec']['storageClassName'] == 'nfs'
  assert role['kind'] == 'Role' and role['rules'] == [dict(r) for r in tfjob.API_RULES]
  assert binding['roleRef'] == {
    'apiGroup': 'rbac.authorization.k8s.io',
    'kind': 'Role',
    'name': 'taxi-estimator-trainer',
  }
  assert binding['subjects'] == [
    {'kind': 'ServiceAccount', 'name': 'pipeline-runner', 'namespace': 'kubeflow'}
  ]


def test_multi_user_installs_use_the_profile_namespace():
  config = load_config(
    overrides=[*TFJOB, 'kubeflow.user_namespace=team-a', 'kubeflow.service_account=default-editor']
  )
  objects = manifests.cluster_manifests(config)
  _validate(objects)
  assert {o['metadata']['namespace'] for o in objects} == {'team-a'}
  assert objects[-1]['subjects'][0] == {
    'kind': 'ServiceAccount',
    'name': 'default-editor',
    'namespace': 'team-a',
  }


def test_a_separate_training_namespace_is_made_and_bound_to_the_pipelines_account():
  config = load_config(
    overrides=[*TFJOB, 'kubeflow.pvc=', 'trainer.shared_dir=gs://b/m', 'kubeflow.namespace=train']
  )
  objects = manifests.cluster_manifests(config)
  _validate(objects)
  namespace, role, binding = objects
  assert namespace['kind'] == 'Namespace' and namespace['metadata']['name'] == 'train'
  assert role['metadata']['namespace'] == binding['metadata']['namespace'] == 'train'
  assert binding['subjects'][0]['namespace'] == 'kubeflow'


def test_a_training_namespace_without_the_pvc_is_refused():
  config = load_config(overrides=[*TFJOB, 'kubeflow.namespace=train'])
  with pytest.raises(ValueError, match=r"'kubeflow\.namespace': 'train'.*mount the PVC"):
    manifests.cluster_manifests(config)


def test_the_manifests_command_writes_and_says_how_to_apply(tmp_path, capsys):
  out = tmp_path / 'cluster.yaml'
  assert cli.main(['manifests', '--set', f'output_root={tmp_path}', '--output', str(out)]) == 0
  assert f'kubectl apply -f {out}' in capsys.readouterr().out
  (pvc,) = yaml.safe_load_all(out.read_text())
  assert pvc['kind'] == 'PersistentVolumeClaim'
  code = cli.main(['manifests', '--set', f'output_root={tmp_path}', '--set', 'kubeflow.pvc='])
  assert code == EXIT_FAILED and 'nothing to write' in capsys.readouterr().err


@pytest.mark.parametrize(
  'override, needle',
  [
    ('kubeflow.resources.Trainer.cpu_limit=1', 'cpu_limit (1) is below cpu (2)'),
    ('kubeflow.resources.Trainer.memory_gb=0', 'greater than 0'),
    ('kubeflow.resources.Trainr.cpu=1', 'kubeflow.resources.Trainr'),
    ('kubeflow.replica_resources.chief.memory_limit_gb=1', 'memory_limit_gb (1) is below'),
  ],
)
def test_bad_resources_are_config_errors(override, needle):
  with pytest.raises(ConfigError, match=re.escape(needle)):
    load_config(overrides=[override])


def test_every_component_can_have_its_own_resources():
  fields = set(load_config().kubeflow.resources.__fields__) - {'default'}
  assert fields == set(COMPONENTS)


def test_v2_tasks_request_and_cap_cpu_and_memory(tmp_path):
  config = load_config(overrides=[*KUBEFLOW, 'kubeflow.resources.Pusher.memory_gb=1'])
  path = kubeflow.compile_pipeline(config, 'kubeflow-v2', tmp_path / 'v2.yaml')
  executors = next(yaml.safe_load_all(path.read_text()))['deploymentSpec']['executors']
  resources = {label: e['container']['resources'] for label, e in executors.items()}
  assert resources['Trainer_executor'] == {
    'cpuRequest': 2.0,
    'cpuLimit': 2.0,
    'memoryRequest': 8.0,
    'memoryLimit': 8.0,
  }
  assert resources['Pusher_executor']['memoryRequest'] == 1.0
  assert resources['CsvExampleGen_executor'] == {
    'cpuRequest': 1.0,
    'cpuLimit': 2.0,
    'memoryRequest': 4.0,
    'memoryLimit': 4.0,
  }


def test_v1_tasks_request_and_cap_cpu_and_memory(tmp_path):
  config = load_config(overrides=KUBEFLOW)
  path = kubeflow.compile_pipeline(config, 'kubeflow', tmp_path / 'v1.yaml')
  templates = {t['name']: t for t in yaml.safe_load(path.read_text())['spec']['templates']}
  assert templates['trainer']['container']['resources'] == {
    'requests': {'cpu': '2', 'memory': '8G'},
    'limits': {'cpu': '2', 'memory': '8G'},
  }
  assert templates['pusher']['container']['resources']['requests'] == {'cpu': '1', 'memory': '4G'}


def _tfjob(**kwargs):
  config = load_config(overrides=[*TFJOB, *kwargs.pop('overrides', [])])
  spec = config.cluster_spec()
  return tfjob.tfjob_manifest(
    'trainer-run-abc',
    namespace='team-a',
    image=spec.image,
    spec_json='{"a": 1}',
    topology=cluster_lib.Topology(workers=2, parameter_servers=1, evaluator=True),
    pvc=spec.pvc,
    mount_path=spec.mount_path,
    resources=spec.resources,
    **kwargs,
  )


def _check_tfjobs(kfp2_python, jobs):
  done = subprocess.run(
    [str(kfp2_python), str(PROJECT_ROOT / 'tests' / 'kfp2' / 'check_tfjob.py')],
    input=json.dumps(jobs),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  return json.loads(done.stdout)


def test_tfjobs_fit_training_operators_schema_and_kubernetes(kfp2_python):
  job = _tfjob(timeout_s=600, overrides=['kubeflow.replica_resources.worker.cpu_limit=4'])
  broken = json.loads(json.dumps(job))
  broken['spec']['tfReplicaSpecs']['Worker']['restartPolicy'] = 'Sometimes'
  broken['spec']['tfReplicaSpecs']['PS']['template']['spec']['containers'][0]['cpu'] = 1
  assert _check_tfjobs(kfp2_python, [job, broken]) == [
    [],
    [
      (
        "TFJob.spec.tfReplicaSpecs.Worker.restartPolicy: 'Sometimes' is not one of "
        "['Always', 'ExitCode', 'Never', 'OnFailure']"
      ),
      'TFJob.spec.tfReplicaSpecs.PS.template.spec.containers[0].cpu: not a field of V1Container',
    ],
  ]
  for replica in job['spec']['tfReplicaSpecs'].values():
    template = {'apiVersion': 'v1', 'kind': 'PodTemplate', 'metadata': {'name': 'x'}}
    kubernetes_validate.validate(
      {**template, 'template': replica['template']}, KUBERNETES_VERSION, strict=True
    )
  containers = {
    name: spec['template']['spec']['containers'][0]['resources']
    for name, spec in job['spec']['tfReplicaSpecs'].items()
  }
  assert containers['Worker']['limits'] == {'cpu': '4', 'memory': '4G'}
  assert containers['PS'] == {
    'requests': {'cpu': '1', 'memory': '2G'},
    'limits': {'cpu': '1', 'memory': '2G'},
  }


def test_the_tfjob_goes_to_the_pods_own_namespace_when_none_is_set(tmp_path):
  path = tmp_path / 'namespace'
  path.write_text('team-a\n')
  assert tfjob.pod_namespace(str(path)) == 'team-a'
  with pytest.raises(cluster_lib.TrainingError, match=r'set kubeflow\.namespace'):
    tfjob.pod_namespace(str(tmp_path / 'missing'))
  assert load_config(overrides=TFJOB).cluster_spec().namespace == ''


class _Api:
  """The kubernetes client's calls the Trainer makes, recorded as (verb, resource)."""

  def __init__(self, states):
    self.calls, self._states = [], list(states)

  def create_namespaced_custom_object(self, group, version, namespace, plural, body):
    self.calls.append(('create', f'{group}/{plural}'))

  def get_namespaced_custom_object(self, group, version, namespace, plural, name):
    self.calls.append(('get', f'{group}/{plural}'))
    state = self._states.pop(0)
    if state == 'interrupt':
      raise KeyboardInterrupt
    return {'status': {'conditions': [{'type': state, 'status': 'True', 'message': 'x'}]}}

  def delete_namespaced_custom_object(self, group, version, namespace, plural, name):
    self.calls.append(('delete', f'{group}/{plural}'))

  def list_namespaced_pod(self, namespace, label_selector):
    self.calls.append(('list', '/pods'))

    class _Pod:
      status = type('S', (), {'phase': 'Failed'})
      metadata = type('M', (), {'name': 'trainer-chief-0'})

    return type('L', (), {'items': [_Pod()]})

  def read_namespaced_pod_log(self, name, namespace, tail_lines):
    self.calls.append(('get', '/pods/log'))
    return 'Traceback ...'


def test_the_trainer_uses_exactly_the_granted_verbs(monkeypatch):
  """A job that fails (pods listed, a log read), one interrupted (deleted), one that succeeds."""
  import kubernetes

  monkeypatch.setattr(kubernetes.config, 'load_incluster_config', lambda: None)
  used = set()
  for state, raised in (
    ('Failed', cluster_lib.TrainingError),
    ('interrupt', KeyboardInterrupt),
    ('Succeeded', None),
  ):
    api = _Api([state])
    monkeypatch.setattr(kubernetes.client, 'CustomObjectsApi', lambda api=api: api)
    monkeypatch.setattr(kubernetes.client, 'CoreV1Api', lambda api=api: api)
    with pytest.raises(raised) if raised else contextlib.nullcontext():
      tfjob.TFJobRunner(_tfjob(), poll_s=0).run()
    used.update(api.calls)
  granted = {
    (verb, f'{group}/{resource}')
    for rule in tfjob.API_RULES
    for group in rule['apiGroups']
    for resource in rule['resources']
    for verb in rule['verbs']
  }
  assert used == granted


def test_replica_resources_are_part_of_the_typed_cluster_spec():
  spec = load_config(overrides=[*TFJOB, 'kubeflow.replica_resources.ps.cpu=0.5']).cluster_spec()
  assert isinstance(spec.resources, contract.ReplicaResources)
  assert contract.ClusterSpec.parse_raw(spec.json()).resources.ps.cpu == 0.5
