"""Loads a compiled KFP v2 spec with the kfp 2.x SDK, strictly; run by the kfp 2.x
environment (`make kfp2-env`), as kfp 2.x cannot share TFX's environment.

Usage: check_spec.py SPEC.yaml; prints one JSON line: what was loaded.
"""

import json
import sys

import yaml
from google.protobuf import json_format
from kfp import components
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2


def main(path: str) -> None:
  with open(path) as f:
    documents = [d for d in yaml.safe_load_all(f) if d]
  # ignore_unknown_fields=False: any field the backend's protojson would refuse fails here.
  spec = json_format.ParseDict(documents[0], pipeline_spec_pb2.PipelineSpec())
  # The backend reads the executors (a Struct in PipelineSpec) as this message.
  deployment = json_format.ParseDict(
    documents[0]['deploymentSpec'], pipeline_spec_pb2.PipelineDeploymentConfig()
  )
  resources = {
    label: json_format.MessageToDict(executor.container.resources)
    for label, executor in deployment.executors.items()
  }
  mounts = {}
  if len(documents) > 1:
    platform = json_format.ParseDict(documents[1], pipeline_spec_pb2.PlatformSpec())
    executors = platform.platforms['kubernetes'].deployment_spec.executors
    for label, config in executors.items():
      k8s = json_format.ParseDict(
        json_format.MessageToDict(config), kubernetes_executor_config_pb2.KubernetesExecutorConfig()
      )
      mounts[label] = [(m.constant, m.mount_path) for m in k8s.pvc_mount]
  component = components.load_component_from_file(path)
  print(
    json.dumps(
      {
        'schema_version': spec.schema_version,
        'name': component.name,
        'tasks': sorted(spec.root.dag.tasks),
        'pvc_mounts': mounts,
        'platform_spec': bool(component.platform_spec.platforms),
        'resources': resources,
      }
    )
  )


if __name__ == '__main__':
  main(sys.argv[1])
