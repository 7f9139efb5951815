"""The pipeline on Beam: TFX's BeamDagRunner orchestrating components on Beam's PortableRunner.

Flink, Spark and Dataflow cannot run on this machine; their options are
checked in tests/test_runners.py and documented in docs/beam.md.
"""

import pathlib

import pytest

from components import serving
from components.ids import ALL as COMPONENTS
from tests.conftest import run_pipeline, sample_workspace

pytestmark = pytest.mark.e2e
SAMPLE_ROWS = 2000
SMALL_RUN = ('trainer.train_steps=300', 'trainer.eval_steps=20', 'evaluator.threshold=0.75')


@pytest.fixture
def workspace(tmp_path):
  return sample_workspace(tmp_path, SAMPLE_ROWS)


def test_beam_orchestrator_with_components_on_the_portable_runner(workspace):
  # One run proves both: the BeamDagRunner orchestrates, and every Beam
  # component runs on the PortableRunner (the local orchestrator with the
  # in-process runner is every other e2e test's).
  process, summary = run_pipeline(workspace, *SMALL_RUN, 'beam.runner=portable', runner='beam')
  assert process.returncode == 0, process.stderr[-3000:]
  assert '(beam runner)' in process.stdout
  assert summary['runner'] == 'beam' and summary['status'] == 'succeeded'
  states = {c['name']: c['state'] for c in summary['components']}
  assert states == dict.fromkeys(COMPONENTS, 'executed')
  assert summary['blessed'] and summary['pushed_path']
  assert serving.versions(str(workspace / 'out' / 'serving')) == [summary['pushed_version']]
  log = pathlib.Path(summary['log_file']).read_text()
  # Every Beam component's pipeline went through the embedded job service.
  assert log.count('Completed job in') >= 3  # CsvExampleGen, StatisticsGen, Transform
  assert 'with state DONE' in log
  assert '--environment_type=LOOPBACK' in log
