"""Scheduled retraining on data drops: the sequence a cron job would run, in file order.

span 1 arrives -> trained, blessed, pushed; the same again -> nothing trained;
span 2 arrives -> trained warm from span 1's model, compared with it, pushed;
span 3 has shifted -> stopped by the drift gate, nothing pushed; accepted once
-> trained on; the same again -> nothing trained, the acceptance holds.
"""

import csv
import io
import json
import random

import pytest

from components import serving
from pipeline.record import EXIT_DATA_REFUSED, EXIT_NOT_PUSHED, EXIT_NOTHING_NEW, EXIT_PUSHED
from tests.conftest import DATA_CSV, run_pipeline

pytestmark = pytest.mark.e2e
SPAN_ROWS = 1500
RUN = (
  'spans.pattern=span-{SPAN}/*',
  'trainer.train_steps=300',
  'trainer.eval_steps=50',
  'evaluator.threshold=0.75',
  'evaluator.max_change=0.05',
)


def _rows() -> tuple[list[str], list[dict]]:
  with open(DATA_CSV, newline='') as f:
    reader = csv.DictReader(f)
    rows = list(reader)
  random.Random(7).shuffle(rows)  # spans from one distribution, unlike the file's order
  return reader.fieldnames, rows


def add_span(root, number: int, shift: bool = False) -> None:
  """Writes `data/span-<number>/data.csv`: the number-th slice of the shuffled data;
  with `shift`, trips are ten times longer (a drifted world)."""
  header, rows = _rows()
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=header, lineterminator='\n')
  writer.writeheader()
  for row in rows[(number - 1) * SPAN_ROWS : number * SPAN_ROWS]:
    if shift and row['trip_miles']:
      row = {**row, 'trip_miles': str(float(row['trip_miles']) * 10 + 5)}
    writer.writerow(row)
  folder = root / 'data' / f'span-{number}'
  folder.mkdir(parents=True)
  (folder / 'data.csv').write_text(out.getvalue())


@pytest.fixture(scope='module')
def root(tmp_path_factory):
  return tmp_path_factory.mktemp('retrain')


def retrain(root, flags=()):
  return run_pipeline(root, *RUN, flags=flags)


def served(root) -> list[int]:
  return serving.versions(str(root / 'out' / 'serving'))


def states(summary) -> dict:
  return {c['name']: c['state'] for c in summary['components']}


@pytest.fixture(scope='module')
def span1(root):
  add_span(root, 1)
  return retrain(root)


def test_span_1_is_trained_from_scratch_and_pushed(span1, root):
  process, summary = span1
  assert process.returncode == EXIT_PUSHED, process.stderr[-3000:]
  assert summary['outcome'] == 'pushed'
  assert summary['spans'] == {'train': [1], 'eval': 1, 'previous': None}
  assert summary['training']['warm_start_version'] is None
  assert 'no model is serving yet' in summary['training']['warm_start']
  assert summary['drift'] is None  # nothing to compare with
  assert served(root) == [summary['pushed_version']]


@pytest.fixture(scope='module')
def same_again(span1, root):
  return retrain(root)


def test_the_same_data_again_trains_nothing(same_again, span1, root):
  process, summary = same_again
  assert process.returncode == EXIT_NOTHING_NEW, process.stderr[-3000:]
  assert summary['outcome'] == 'nothing_new'
  assert set(states(summary).values()) == {'cached'}
  assert 'no new data or code: nothing to train (exit 4)' in process.stdout
  assert served(root) == [span1[1]['pushed_version']]


@pytest.fixture(scope='module')
def span2(same_again, root):
  add_span(root, 2)
  return retrain(root)


def test_span_2_trains_warm_from_span_1s_model_and_is_compared_with_it(span2, span1, root):
  process, summary = span2
  first = span1[1]['pushed_version']
  assert process.returncode == EXIT_PUSHED, process.stderr[-3000:]
  assert summary['spans'] == {'train': [2], 'eval': 2, 'previous': 1}
  assert summary['training']['warm_start_version'] == first
  assert f'warm-started from serving version {first}' in summary['training']['warm_start']
  log = (root / 'out' / 'runs' / summary['run_id'] / 'pipeline.log').read_text()
  assert f'Warm start: warm-started from serving version {first}' in log
  # The Evaluator compared the candidate with span 1's model, on span 2's eval rows.
  assert summary['gate']['serving'] is not None
  assert f"serving model's {summary['gate']['serving']:.4f}" in summary['blessing_reason']
  # On the same rows, with the interval of the difference (TFMA's jackknife).
  change = summary['gate']['change']
  assert change['low'] <= change['diff'] <= change['high'] and not change['blocks']
  assert '95% interval' in summary['blessing_reason']
  assert served(root) == [first, summary['pushed_version']]
  # Same distribution: every drift measurement is under its threshold.
  measured = {m['feature']: m for m in summary['drift']['measurements']}
  assert {'trip_miles', 'payment_type', 'fare'} <= set(measured)
  assert not [m for m in measured.values() if m['drifted']]


@pytest.fixture(scope='module')
def span3(span2, root):
  add_span(root, 3, shift=True)
  return retrain(root)


def test_a_shifted_span_3_is_stopped_by_the_drift_gate(span3, span2, root):
  process, summary = span3
  assert process.returncode == EXIT_DATA_REFUSED, process.stderr[-3000:]
  assert summary['outcome'] == 'data_refused'
  assert 'data drift: span 3 differs from the span before it in trip_miles' in process.stderr
  assert 'trip_miles: Jensen-Shannon divergence' in process.stderr
  assert '--accept-drift' in process.stderr
  assert states(summary)['ExampleValidator'] == 'failed'
  # Transform analysed the span meanwhile (cached for an accepted rerun); nothing trained.
  assert states(summary)['Transform'] == 'executed'
  assert states(summary)['Trainer'] == states(summary)['Evaluator'] == 'skipped'
  assert summary['pushed_path'] is None
  assert served(root)[-1] == span2[1]['pushed_version'] and len(served(root)) == 2


@pytest.fixture(scope='module')
def accepted(span3, root):
  return retrain(root, flags=['--accept-drift'])


def test_accepting_the_drift_trains_on_span_3(accepted, span2, root):
  process, summary = accepted
  assert process.returncode in (EXIT_PUSHED, EXIT_NOT_PUSHED), process.stderr[-3000:]
  assert states(summary)['Trainer'] == 'executed'
  assert summary['training']['warm_start_version'] == span2[1]['pushed_version']
  assert summary['drift']['accepted_at']
  assert any(m['drifted'] for m in summary['drift']['measurements'])
  records = list((root / 'out' / 'drift-acceptances').glob('*.json'))
  assert len(records) == 1 and json.loads(records[0].read_text())['newest_span'] == 3


def test_after_acceptance_the_same_spans_train_nothing(accepted, root):
  process, summary = retrain(root)
  assert process.returncode == EXIT_NOTHING_NEW, process.stderr[-3000:]
  assert states(summary)['Trainer'] == 'cached'
  assert summary['drift']['accepted_at'] == accepted[1]['drift']['accepted_at']


def test_after_a_rollback_the_next_run_compares_against_the_rolled_back_model(
  accepted, span2, root
):
  import subprocess
  import sys

  rollback = subprocess.run(
    [sys.executable, '-m', 'pipeline', 'rollback', '--set', f'output_root={root / "out"}'],
    capture_output=True,
    text=True,
    cwd=root,
    timeout=300,
  )
  assert rollback.returncode == 0, rollback.stderr[-3000:]
  serving_now = serving.latest(str(root / 'out' / 'serving'))
  assert serving_now.record['rollback_of'] == span2[1]['pushed_version']
  # A changed gate re-evaluates the (cached) span 3 model against what serves now.
  process, summary = run_pipeline(root, *RUN, 'evaluator.max_change=0.5')
  assert process.returncode == EXIT_PUSHED, process.stderr[-3000:]
  assert states(summary)['Trainer'] == 'cached' and states(summary)['Evaluator'] == 'executed'
  # Span 2's model on span 3's eval rows: what the accepted run measured as its baseline.
  assert summary['gate']['serving'] == pytest.approx(accepted[1]['gate']['serving'], abs=1e-6)
  assert summary['pushed_version'] > serving_now.version
