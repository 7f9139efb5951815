"""The training cluster without TensorFlow: supervision, restarts, cleanup, TFJob manifests.

LocalCluster is driven here with a stand-in replica program that behaves by
role (from TF_CONFIG) and by a per-role script of exit codes, so restarts,
failures and timeouts are checked in seconds; the real replicas train in
tests/test_cluster_e2e.py.
"""

import json
import sys
import textwrap

import psutil
import pytest

from components import cluster as cluster_lib
from components import local_cluster, replica, tfjob
from tests.conftest import taxi_module_args

FAKE_REPLICA = textwrap.dedent("""
    import json, os, pathlib, sys, time
    task = json.loads(os.environ['TF_CONFIG'])['task']
    role = f"{task['type']}-{task['index']}"
    state = pathlib.Path(sys.argv[1])
    plan = json.loads((state / 'plan.json').read_text()).get(role, [])
    starts = state / f'{role}.starts'
    n = int(starts.read_text()) if starts.exists() else 0
    starts.write_text(str(n + 1))
    (state / f'{role}.config').write_text(os.environ['TF_CONFIG'])
    action = plan[n] if n < len(plan) else ('serve' if task['type'] == 'ps' else 0)
    print(f'{role} start {n} action {action}', flush=True)
    if action in ('serve', 'hang'):
        time.sleep(3600)
    elif action == 'kill':
        time.sleep(0.2)
        os.kill(os.getpid(), 9)
    elif str(action).startswith('sleep:'):
        time.sleep(float(action[6:]))
    else:
        time.sleep(0.2)
        sys.exit(int(action))
""")


def make_cluster(tmp_path, plan, topology, **kwargs):
  (tmp_path / 'plan.json').write_text(json.dumps(plan))
  script = tmp_path / 'fake_replica.py'
  script.write_text(FAKE_REPLICA)
  return local_cluster.LocalCluster(
    [sys.executable, str(script), str(tmp_path)], topology, tmp_path / 'logs', poll_s=0.05, **kwargs
  )


def starts(tmp_path, role):
  path = tmp_path / f'{role}.starts'
  return int(path.read_text()) if path.exists() else 0


def fake_replicas_running(tmp_path):
  return [
    p
    for p in psutil.process_iter(['cmdline'])
    if str(tmp_path / 'fake_replica.py') in (p.info['cmdline'] or [])
  ]


def test_topology_lists_every_replica():
  topology = cluster_lib.Topology(workers=2, parameter_servers=1, evaluator=True)
  assert topology.tasks() == [
    ('chief', 0),
    ('worker', 0),
    ('worker', 1),
    ('ps', 0),
    ('evaluator', 0),
  ]


def test_each_replica_gets_its_role_and_one_shared_cluster(tmp_path):
  local = make_cluster(
    tmp_path, {}, cluster_lib.Topology(workers=1, parameter_servers=1, evaluator=True)
  )
  local.run()
  configs = {
    role: json.loads((tmp_path / f'{role}.config').read_text())
    for role in ('chief-0', 'worker-0', 'ps-0', 'evaluator-0')
  }
  assert {c['task']['type'] for c in configs.values()} == {'chief', 'worker', 'ps', 'evaluator'}
  cluster = configs['chief-0']['cluster']
  assert set(cluster) == {'chief', 'worker', 'ps'}  # the evaluator is not a cluster member
  assert all(c['cluster'] == cluster for c in configs.values())
  addresses = [a for members in cluster.values() for a in members]
  assert len(set(addresses)) == 3 and all(a.startswith('127.0.0.1:') for a in addresses)
  assert (tmp_path / 'logs' / 'worker-0.log').read_text().count('worker-0 start 0') == 1
  assert not fake_replicas_running(tmp_path)  # the parameter server was stopped


def test_a_failed_worker_is_restarted_and_training_completes(tmp_path):
  local = make_cluster(
    tmp_path,
    {'worker-0': ['kill', 0], 'chief-0': ['sleep:2']},
    cluster_lib.Topology(workers=1, parameter_servers=1),
  )
  local.run()
  assert starts(tmp_path, 'worker-0') == 2
  assert local.restarts == {('worker', 0): 1}
  assert 'restart 1' in (tmp_path / 'logs' / 'worker-0.log').read_text()
  assert not fake_replicas_running(tmp_path)


def test_a_failed_chief_fails_the_run_with_its_log(tmp_path):
  local = make_cluster(
    tmp_path, {'chief-0': [3]}, cluster_lib.Topology(workers=1, parameter_servers=1)
  )
  with pytest.raises(
    cluster_lib.TrainingError, match=r'replica chief:0 failed \(exit code 3\)'
  ) as e:
    local.run()
  assert 'chief-0 start 0 action 3' in str(e.value)  # the tail of the chief's log
  assert starts(tmp_path, 'chief-0') == 1
  assert not fake_replicas_running(tmp_path)


def test_retries_are_bounded(tmp_path):
  local = make_cluster(
    tmp_path,
    {'ps-0': [1, 1, 1], 'chief-0': ['hang']},
    cluster_lib.Topology(workers=0, parameter_servers=1),
    max_restarts=2,
  )
  with pytest.raises(cluster_lib.TrainingError, match=r'ps:0 failed 3 times .*max_restarts is 2'):
    local.run()
  assert starts(tmp_path, 'ps-0') == 3
  assert not fake_replicas_running(tmp_path)


def test_a_timeout_stops_every_replica(tmp_path):
  local = make_cluster(
    tmp_path,
    {'chief-0': ['hang'], 'worker-0': ['hang']},
    cluster_lib.Topology(workers=1, parameter_servers=1),
    timeout_s=1,
  )
  with pytest.raises(cluster_lib.TrainingError, match='timeout_s=1'):
    local.run()
  assert not fake_replicas_running(tmp_path)


def test_describe_exit_names_signals():
  assert cluster_lib.describe_exit(-9) == 'killed by SIGKILL'
  assert cluster_lib.describe_exit(2) == 'exit code 2'


@pytest.mark.parametrize(
  'tf_config, expected',
  [
    ({}, {'num_shards': 1, 'shard_index': 0}),
    (
      {
        'cluster': {'chief': ['a'], 'worker': ['b', 'c'], 'ps': ['d']},
        'task': {'type': 'chief', 'index': 0},
      },
      {'num_shards': 3, 'shard_index': 0},
    ),
    (
      {
        'cluster': {'chief': ['a'], 'worker': ['b', 'c'], 'ps': ['d']},
        'task': {'type': 'worker', 'index': 1},
      },
      {'num_shards': 3, 'shard_index': 2},
    ),
    (
      {
        'cluster': {'chief': ['a'], 'worker': ['b'], 'ps': ['d']},
        'task': {'type': 'evaluator', 'index': 0},
      },
      {'num_shards': 1, 'shard_index': 0},
    ),
  ],
)
def test_chief_and_workers_read_disjoint_shards(tf_config, expected):
  assert replica.data_shard(tf_config) == expected


def test_replica_spec_round_trips_through_json():
  class Args:
    pass

  args = Args()
  for name in replica.FN_ARGS_FIELDS:
    setattr(args, name, None)
  args.train_files = ['/x/train/*']
  args.custom_config = taxi_module_args(batch_size=40)
  spec = replica.ReplicaSpec.from_fn_args('trainer_module.trainer_fn', args)
  assert replica.ReplicaSpec.from_json(spec.to_json()) == spec
  assert spec.fn_args['train_files'] == ['/x/train/*']


def manifest(**kwargs):
  defaults = {
    'namespace': 'ml',
    'image': 'registry.example/taxi:1',
    'spec_json': '{"a": 1}',
    'topology': cluster_lib.Topology(workers=2, parameter_servers=1, evaluator=True),
    'pvc': 'models',
    'mount_path': '/mnt/shared',
    'max_restarts': 4,
    'timeout_s': 3600,
  }
  return tfjob.tfjob_manifest('trainer-7-abc', **{**defaults, **kwargs})


def test_tfjob_manifest_replicas_image_command_and_restarts():
  job = manifest()
  assert job['apiVersion'] == 'kubeflow.org/v1' and job['kind'] == 'TFJob'
  assert job['metadata'] == {
    'name': 'trainer-7-abc',
    'namespace': 'ml',
    'labels': {'app.kubernetes.io/managed-by': 'taxi-estimator-pipeline'},
  }
  specs = job['spec']['tfReplicaSpecs']
  assert {k: v['replicas'] for k, v in specs.items()} == {
    'Chief': 1,
    'Worker': 2,
    'PS': 1,
    'Evaluator': 1,
  }
  assert {k: v['restartPolicy'] for k, v in specs.items()} == {
    'Chief': 'Never',
    'Worker': 'OnFailure',
    'PS': 'OnFailure',
    'Evaluator': 'OnFailure',
  }
  assert job['spec']['runPolicy'] == {
    'cleanPodPolicy': 'Running',
    'backoffLimit': 4,
    'activeDeadlineSeconds': 3600,
  }
  for spec in specs.values():
    (container,) = spec['template']['spec']['containers']
    assert container['name'] == 'tensorflow'
    assert container['image'] == 'registry.example/taxi:1'
    assert container['command'] == ['python', '-m', 'components.replica', '--spec-json', '{"a": 1}']
    assert 'env' not in container  # TF_CONFIG is the operator's job
    assert container['volumeMounts'] == [{'name': 'shared', 'mountPath': '/mnt/shared'}]
    assert spec['template']['spec']['volumes'] == [
      {'name': 'shared', 'persistentVolumeClaim': {'claimName': 'models'}}
    ]


def test_tfjob_manifest_on_bucket_storage_mounts_nothing():
  job = manifest(pvc='', timeout_s=0, topology=cluster_lib.Topology(workers=1, parameter_servers=1))
  specs = job['spec']['tfReplicaSpecs']
  assert set(specs) == {'Chief', 'Worker', 'PS'}
  for spec in specs.values():
    assert 'volumes' not in spec['template']['spec']
    assert 'volumeMounts' not in spec['template']['spec']['containers'][0]
  assert 'activeDeadlineSeconds' not in job['spec']['runPolicy']


@pytest.mark.parametrize(
  'conditions, expected',
  [
    ([], (None, '')),
    ([{'type': 'Created', 'status': 'True'}, {'type': 'Running', 'status': 'True'}], (None, '')),
    (
      [{'type': 'Running', 'status': 'False'}, {'type': 'Succeeded', 'status': 'True'}],
      ('Succeeded', ''),
    ),
    (
      [{'type': 'Failed', 'status': 'True', 'message': 'chief exited 1'}],
      ('Failed', 'chief exited 1'),
    ),
  ],
)
def test_tfjob_state(conditions, expected):
  assert tfjob.tfjob_state({'status': {'conditions': conditions}}) == expected


def test_error_tail_is_the_error_not_the_warnings(tmp_path):
  log = tmp_path / 'chief-0.log'
  log.write_text(
    '\n'.join(
      ['W1123 tensorflow WARNING: something is deprecated'] * 30
      + [
        'Traceback (most recent call last):',
        '  File "x.py", line 1, in <module>',
        'ValueError: the real cause',
      ]
      + ['WARNING:tensorflow: Instructions for updating: use tf.data'] * 5
    )
  )
  tail = cluster_lib.error_tail(log)
  assert tail.startswith('Traceback') and tail.endswith('ValueError: the real cause')
  log.write_text('\n'.join(['WARNING: deprecated'] * 30 + ['Segmentation fault']))
  assert cluster_lib.error_tail(log) == 'Segmentation fault'
