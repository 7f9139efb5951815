"""Measurements of one pipeline run: wall time, peak memory, MLMD timings, AUC."""

import dataclasses
import os
import subprocess
import time

import psutil


@dataclasses.dataclass
class Run:
  wall_s: float
  peak_rss_mb: float
  returncode: int
  components: dict  # node id -> seconds (MLMD create -> last update)
  auc: float | None


def run_measured(command, log_path) -> tuple[float, float, int]:
  """Runs `command`, polling the RSS of its whole process tree (Beam workers too).

  Returns (wall seconds, peak tree RSS in MB, return code).
  """
  started = time.monotonic()
  with open(log_path, 'w') as log:
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    root, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
      try:
        tree = [root, *root.children(recursive=True)]
        peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
      except psutil.Error:
        pass
      time.sleep(0.2)
  return time.monotonic() - started, peak / 2**20, process.returncode


def latest_run(metadata_path: str):
  """(component seconds by node id, evaluation URI) of the newest run in MLMD."""
  from pipeline.service.mlmd import (
    execution_seconds,
    executions_by_node,
    open_store,
    output_artifacts,
  )

  store = open_store(metadata_path)
  runs = store.get_contexts_by_type('pipeline_run')
  if not runs:
    return {}, None
  run = max(runs, key=lambda c: c.create_time_since_epoch)
  seconds, evaluation = {}, None
  for name, execution in executions_by_node(store, run).items():
    seconds[name] = execution_seconds(execution)
    outputs = output_artifacts(store, execution.id)
    if 'evaluation' in outputs:
      evaluation = outputs['evaluation'].uri
  return seconds, evaluation


def overall_auc(evaluation_uri: str | None) -> float | None:
  """Overall AUC of a TFMA evaluation: TFMA's own if computed, else the model's."""
  if not evaluation_uri or not os.path.exists(evaluation_uri):
    return None
  import tensorflow_model_analysis as tfma

  tfma_auc = model_auc = None
  for per_slice in tfma.load_metrics(evaluation_uri):
    if per_slice.slice_key.single_slice_keys:
      continue
    for kv in per_slice.metric_keys_and_values:
      if kv.key.name == 'auc' and not kv.key.is_diff and kv.key.model_name in ('', 'candidate'):
        if kv.key.HasField('example_weighted'):
          tfma_auc = kv.value.double_value.value
        else:
          model_auc = kv.value.double_value.value
  return tfma_auc if tfma_auc is not None else model_auc


def measure(command, output_root: str, log_path: str) -> Run:
  wall, peak, code = run_measured(command, log_path)
  metadata_path = os.path.join(output_root, 'metadata.sqlite')
  components, evaluation = (
    latest_run(metadata_path) if os.path.exists(metadata_path) else ({}, None)
  )
  return Run(wall, peak, code, components, overall_auc(evaluation))


def completed(returncode: int) -> bool:
  """Whether a pipeline run finished: pushed, or trained and kept the serving
  model (tiny bench runs may not pass the gate), or had nothing new to do."""
  from pipeline.record import EXIT_NOT_PUSHED, EXIT_NOTHING_NEW, EXIT_PUSHED

  return returncode in (EXIT_PUSHED, EXIT_NOT_PUSHED, EXIT_NOTHING_NEW)
