"""A training cluster on Kubernetes: one Kubeflow TFJob per Trainer execution.

The training operator starts the pods and sets each one's TF_CONFIG; this
module writes the manifest, creates the job, waits for it, and deletes it if
the Trainer is interrupted.
"""

import hashlib
import logging
import re
import time

from components.cluster import (
  DEFAULT_MAX_RESTARTS,
  LOG_TAIL_LINES,
  SHARED_VOLUME,
  Topology,
  TrainingError,
  raise_on_sigterm,
  replica_command,
)
from components.contract import ReplicaResources

_LOG = logging.getLogger(__name__)

TFJOB_GROUP, TFJOB_VERSION, TFJOB_PLURAL = 'kubeflow.org', 'v1', 'tfjobs'
_REPLICA_TYPES = {'chief': 'Chief', 'worker': 'Worker', 'ps': 'PS', 'evaluator': 'Evaluator'}


# The operator names pods and services `<job>-<replica type>-<index>`, which
# must be DNS-1035 labels (63 characters): this leaves room for the suffix.
MAX_JOB_NAME = 48


def job_name(run_dir: str) -> str:
  """A TFJob name unique per Trainer execution (its model-run directory is) and
  valid for Kubernetes: lowercase letters, digits and '-', starting with a
  letter (on KFP v2 that directory ends in `model_run`, whose `_` is not)."""
  digest = hashlib.sha1(run_dir.encode()).hexdigest()[:10]
  readable = re.sub(r'[^a-z0-9]+', '-', run_dir.rstrip('/').rsplit('/', 1)[-1].lower()).strip('-')
  prefix = f'trainer-{readable}'[: MAX_JOB_NAME - len(digest) - 1].rstrip('-')
  return f'{prefix}-{digest}'


# Where Kubernetes tells a pod its own namespace.
POD_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace'


def pod_namespace(path: str = POD_NAMESPACE_FILE) -> str:
  """The namespace this pod runs in (a multi-user install's profile namespace)."""
  try:
    with open(path) as f:
      return f.read().strip()
  except OSError:
    raise TrainingError(
      f'kubeflow.namespace is empty and this pod has no {path}: set kubeflow.namespace'
    ) from None


def tfjob_manifest(
  name: str,
  *,
  namespace: str,
  image: str,
  spec_json: str,
  topology: Topology,
  pvc: str = '',
  mount_path: str = '',
  max_restarts: int = DEFAULT_MAX_RESTARTS,
  timeout_s: float = 0,
  resources: ReplicaResources | None = None,
) -> dict:
  """A `kubeflow.org/v1` TFJob running every replica of one Trainer execution.

  The training operator sets each pod's TF_CONFIG. The chief is never
  restarted (its failure fails the job); the others restart on failure, at
  most `max_restarts` times in total. `pvc`, if given, is mounted at
  `mount_path` in every pod (the model directory is then under it).
  """
  resources = resources or ReplicaResources()
  counts: dict[str, int] = {}
  for task_type, _ in topology.tasks():
    counts[task_type] = counts.get(task_type, 0) + 1
  replica_specs = {
    _REPLICA_TYPES[task_type]: {
      'replicas': count,
      'restartPolicy': 'Never' if task_type == 'chief' else 'OnFailure',
      'template': {
        'spec': _pod_spec(
          image, spec_json, pvc, mount_path, getattr(resources, task_type).kubernetes()
        )
      },
    }
    for task_type, count in counts.items()
  }
  run_policy: dict = {'cleanPodPolicy': 'Running', 'backoffLimit': max_restarts}
  if timeout_s:
    run_policy['activeDeadlineSeconds'] = int(timeout_s)
  return {
    'apiVersion': f'{TFJOB_GROUP}/{TFJOB_VERSION}',
    'kind': 'TFJob',
    'metadata': {
      'name': name,
      'namespace': namespace,
      'labels': {'app.kubernetes.io/managed-by': 'taxi-estimator-pipeline'},
    },
    'spec': {'runPolicy': run_policy, 'tfReplicaSpecs': replica_specs},
  }


def _pod_spec(image: str, spec_json: str, pvc: str, mount_path: str, resources: dict) -> dict:
  container = {
    'name': 'tensorflow',  # the name the training operator looks for
    'image': image,
    'command': replica_command('python', '--spec-json', spec_json),
    'resources': resources,
  }
  pod_spec: dict = {'containers': [container]}
  if pvc:
    container['volumeMounts'] = [{'name': SHARED_VOLUME, 'mountPath': mount_path}]
    pod_spec['volumes'] = [{'name': SHARED_VOLUME, 'persistentVolumeClaim': {'claimName': pvc}}]
  return pod_spec


# What the Trainer does with the Kubernetes API: `pipeline manifests` grants
# exactly this to the pipeline's service account.
API_RULES = (
  {'apiGroups': [TFJOB_GROUP], 'resources': [TFJOB_PLURAL], 'verbs': ['create', 'delete', 'get']},
  {'apiGroups': [''], 'resources': ['pods'], 'verbs': ['list']},
  {'apiGroups': [''], 'resources': ['pods/log'], 'verbs': ['get']},
)


class TFJobRunner:
  """Creates a TFJob, waits for it, and raises with the failing pod's log tail."""

  def __init__(self, manifest: dict, poll_s: float = 10.0):
    self._manifest = manifest
    self._poll_s = poll_s

  def run(self):
    from kubernetes import client  # only the Kubeflow mode needs it
    from kubernetes import config as kube_config

    try:
      kube_config.load_incluster_config()
    except kube_config.ConfigException:
      kube_config.load_kube_config()
    api = client.CustomObjectsApi()
    meta = self._manifest['metadata']
    name, namespace = meta['name'], meta['namespace']
    api.create_namespaced_custom_object(
      TFJOB_GROUP, TFJOB_VERSION, namespace, TFJOB_PLURAL, self._manifest
    )
    _LOG.info('Created TFJob %s/%s.', namespace, name)
    finished = False
    restore = raise_on_sigterm()
    try:
      while True:
        job = api.get_namespaced_custom_object(
          TFJOB_GROUP, TFJOB_VERSION, namespace, TFJOB_PLURAL, name
        )
        state, message = tfjob_state(job)
        if state == 'Succeeded':
          finished = True
          return
        if state == 'Failed':
          finished = True
          raise TrainingError(
            f'TFJob {namespace}/{name} failed: {message}\n'
            f'{_failed_pod_log(client.CoreV1Api(), namespace, name)}'
          )
        time.sleep(self._poll_s)
    finally:
      restore()
      if not finished:  # interrupted or timed out here: do not leave the job running
        api.delete_namespaced_custom_object(
          TFJOB_GROUP, TFJOB_VERSION, namespace, TFJOB_PLURAL, name
        )


def tfjob_state(job: dict) -> tuple[str | None, str]:
  """The job's terminal condition ('Succeeded' or 'Failed') and its message, if any."""
  for condition in reversed(job.get('status', {}).get('conditions', [])):
    if condition.get('type') in ('Succeeded', 'Failed') and condition.get('status') == 'True':
      return condition['type'], condition.get('message', '')
  return None, ''


def _failed_pod_log(core, namespace: str, job_name: str) -> str:
  pods = core.list_namespaced_pod(
    namespace, label_selector=f'training.kubeflow.org/job-name={job_name}'
  ).items
  for pod in pods:
    if pod.status.phase == 'Failed':
      log = core.read_namespaced_pod_log(pod.metadata.name, namespace, tail_lines=LOG_TAIL_LINES)
      return f'last lines of pod {pod.metadata.name}:\n{log}'
  return '(no failed pod found)'
