"""Checks TFJob manifests strictly against training-operator's own typed models
(`kubeflow-training`, generated from its CRD) and Kubernetes' (for the pod
templates); run by the kfp 2.x environment (`make kfp2-env`).

Usage: check_tfjob.py < JSON list of manifests; prints one JSON line: the
problems found, each with its path.
"""

import json
import re
import sys

import kubeflow.training.models as training_models
import kubernetes.client.models as k8s_models

_PRIMITIVES = {'str': str, 'int': int, 'bool': bool, 'float': (int, float), 'object': object}
# Enums of training-operator v1.9's API (pkg/apis/kubeflow.org/v1).
_ENUMS = {
  'restart_policy': {'Always', 'OnFailure', 'Never', 'ExitCode'},
  'clean_pod_policy': {'All', 'Running', 'None'},
}
_REPLICA_TYPES = {'Chief', 'Master', 'Worker', 'PS', 'Evaluator'}


def _model(name: str):
  return getattr(training_models, name, None) or getattr(k8s_models, name)


def check(value, type_name: str, path: str, problems: list[str], attribute: str = ''):
  """Appends to `problems` every field of `value` that `type_name` does not allow."""
  if match := re.fullmatch(r'list\[(.+)\]', type_name):
    if not isinstance(value, list):
      problems.append(f'{path}: expected a list')
      return
    for i, item in enumerate(value):
      check(item, match[1], f'{path}[{i}]', problems)
    return
  if match := re.fullmatch(r'dict\(str, (.+)\)', type_name):
    if not isinstance(value, dict):
      problems.append(f'{path}: expected a mapping')
      return
    for key, item in value.items():
      check(item, match[1], f'{path}.{key}', problems)
    return
  if type_name in _PRIMITIVES:
    if not isinstance(value, _PRIMITIVES[type_name]):
      problems.append(f'{path}: expected {type_name}, got {type(value).__name__}')
    elif attribute in _ENUMS and value not in _ENUMS[attribute]:
      problems.append(f'{path}: {value!r} is not one of {sorted(_ENUMS[attribute])}')
    return
  model = _model(type_name)
  if not isinstance(value, dict):
    problems.append(f'{path}: expected a {type_name} mapping')
    return
  by_json = {json_name: name for name, json_name in model.attribute_map.items()}
  for key, item in value.items():
    if key not in by_json:
      problems.append(f'{path}.{key}: not a field of {type_name}')
      continue
    name = by_json[key]
    check(item, model.openapi_types[name], f'{path}.{key}', problems, name)


def check_tfjob(job: dict) -> list[str]:
  problems: list[str] = []
  check(job, 'KubeflowOrgV1TFJob', 'TFJob', problems)
  if job.get('apiVersion') != 'kubeflow.org/v1' or job.get('kind') != 'TFJob':
    problems.append('TFJob: apiVersion kubeflow.org/v1, kind TFJob expected')
  for replica, spec in job.get('spec', {}).get('tfReplicaSpecs', {}).items():
    if replica not in _REPLICA_TYPES:
      problems.append(f'TFJob.spec.tfReplicaSpecs.{replica}: not a TFJob replica type')
    names = [c.get('name') for c in spec.get('template', {}).get('spec', {}).get('containers', [])]
    if 'tensorflow' not in names:  # the operator finds the container by this name
      problems.append(f'TFJob.spec.tfReplicaSpecs.{replica}: no container named tensorflow')
  return problems


if __name__ == '__main__':
  print(json.dumps([check_tfjob(job) for job in json.load(sys.stdin)]))
