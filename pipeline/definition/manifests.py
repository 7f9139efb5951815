"""What a Kubernetes cluster needs before the pipeline runs there, and nothing more.

- The TFJob's namespace, when `kubeflow.namespace` names one other than the
  pipeline's pods' own (which the KFP install or its profile already made).
- The PersistentVolumeClaim every task and TFJob replica mounts, when
  `kubeflow.pvc` is set: ReadWriteMany, as pods on several nodes share it.
- With `trainer.cluster: kubeflow`, a Role and RoleBinding giving the
  pipeline's service account exactly what the Trainer does with the API
  (`components.tfjob.API_RULES`): create, watch and delete its TFJob, list
  its pods and read a failed one's log.
"""

import pathlib

import yaml

from components import tfjob
from pipeline.config import Config

MANAGED_BY = {'app.kubernetes.io/managed-by': 'estimator-pipeline'}


# Where a single-user KFP install runs pipeline pods.
KFP_NAMESPACE = 'kubeflow'


def cluster_manifests(config: Config) -> list[dict]:
  """The Kubernetes objects for `config`, in the order to apply them.

  The pipeline's pods run in `kubeflow.user_namespace` (a multi-user
  install's profile) or else KFP's own namespace; the TFJob in
  `kubeflow.namespace`, or else theirs.
  """
  kf = config.kubeflow
  pods_namespace = kf.user_namespace or KFP_NAMESPACE
  job_namespace = kf.namespace or pods_namespace
  if kf.pvc and job_namespace != pods_namespace and config.trainer.cluster == 'kubeflow':
    raise ValueError(
      f"config key 'kubeflow.namespace': {job_namespace!r}: the TFJob's replicas mount "
      f'the PVC {kf.pvc!r}, which lives where the pipeline runs ({pods_namespace!r}); '
      'leave kubeflow.namespace empty'
    )
  objects = []
  if job_namespace != pods_namespace:
    objects.append(
      {
        'apiVersion': 'v1',
        'kind': 'Namespace',
        'metadata': {'name': job_namespace, 'labels': MANAGED_BY},
      }
    )
  if kf.pvc:
    spec = {'accessModes': ['ReadWriteMany'], 'resources': {'requests': {'storage': kf.pvc_size}}}
    if kf.storage_class:
      spec['storageClassName'] = kf.storage_class
    objects.append(
      {
        'apiVersion': 'v1',
        'kind': 'PersistentVolumeClaim',
        'metadata': {'name': kf.pvc, 'namespace': pods_namespace, 'labels': MANAGED_BY},
        'spec': spec,
      }
    )
  if config.trainer.cluster == 'kubeflow':
    role = f'{config.pipeline_name}-trainer'
    metadata = {'name': role, 'namespace': job_namespace, 'labels': MANAGED_BY}
    objects.append(
      {
        'apiVersion': 'rbac.authorization.k8s.io/v1',
        'kind': 'Role',
        'metadata': metadata,
        'rules': [dict(rule) for rule in tfjob.API_RULES],
      }
    )
    objects.append(
      {
        'apiVersion': 'rbac.authorization.k8s.io/v1',
        'kind': 'RoleBinding',
        'metadata': dict(metadata),
        'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'Role', 'name': role},
        'subjects': [
          {'kind': 'ServiceAccount', 'name': kf.service_account, 'namespace': pods_namespace}
        ],
      }
    )
  return objects


def write_manifests(config: Config, output: pathlib.Path) -> pathlib.Path:
  """Writes `cluster_manifests(config)` to `output`, a multi-document YAML file."""
  if output.suffix not in ('.yaml', '.yml'):
    raise ValueError(f'output {output}: must be a .yaml file')
  objects = cluster_manifests(config)
  if not objects:
    raise ValueError(
      'nothing to write: kubeflow.pvc is empty, kubeflow.namespace is the '
      "pipeline's own and trainer.cluster is not kubeflow"
    )
  output.parent.mkdir(parents=True, exist_ok=True)
  output.write_text(yaml.safe_dump_all(objects, sort_keys=False))
  return output
