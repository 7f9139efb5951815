"""`make bench`: our pipeline and TFX's own taxi Estimator pipeline, side by side.

Both run alternately, each in a fresh process and output root, on the same
data with equal training work (train steps, batch size, eval steps). Writes
bench/results/latest.json and prints a markdown table.
"""

import argparse
import csv
import functools
import json
import os
import pathlib
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench import document
from bench.measure import Run, completed, measure
from pipeline.config import PROJECT_ROOT

ANCHOR_BATCH_SIZE = 40  # fixed in the anchor's taxi_utils.py
RESULTS = PROJECT_ROOT / 'bench' / 'results' / 'latest.json'
# A ratio is fair only when nothing else ran: a 1-minute load average above
# this many per CPU before the bench means other work shared the cores, a
# 5-minute one above RECENT_LOAD_PER_CPU that it has only just ended.
QUIET_LOAD_PER_CPU = 0.25
RECENT_LOAD_PER_CPU = 0.5
# The document holding the speed table between the bench markers.


def _parser():
  parser = argparse.ArgumentParser(prog='python -m bench', description=__doc__)
  parser.add_argument(
    '--reps',
    type=int,
    default=3,
    help='runs of each pipeline side by side; 0 keeps those of --output '
    'and re-measures only throughput and scaling',
  )
  parser.add_argument('--train-steps', type=int, default=10_000)
  parser.add_argument('--eval-steps', type=int, default=5_000)
  parser.add_argument(
    '--data',
    default=str(PROJECT_ROOT / 'data' / 'taxi'),
    help='directory of CSV files both pipelines read',
  )
  parser.add_argument(
    '--scales',
    default='1,10,100',
    help='data multiples for the scaling measurement; empty for none',
  )
  parser.add_argument(
    '--once',
    type=int,
    default=0,
    help='one run from nothing on this multiple of the data, recorded with its '
    'date and commit (the 1,000x record); 0 for none',
  )
  parser.add_argument(
    '--scale-train-steps',
    type=int,
    default=200,
    help='train steps of the scaling runs (they measure data work)',
  )
  parser.add_argument(
    '--throughput-steps',
    type=int,
    default=3000,
    help='train steps of each training-throughput run; 0 for none',
  )
  parser.add_argument(
    '--throughput-workers',
    default='0,1,2',
    help='topologies of the throughput runs: 0 is a single process, '
    'N is a local cluster of a chief, N workers and 1 parameter server',
  )
  parser.add_argument(
    '--anchor-beam-args',
    default='',
    help="Beam arguments replacing the anchor's own (space-separated); for smoke "
    'tests only: the results record them and no ratio against it is a measurement',
  )
  parser.add_argument('--output', default=str(RESULTS))
  parser.add_argument(
    '--doc',
    help='write this performance document whole from the results (default: '
    'docs/performance.md when the results go to their default file, else none)',
  )
  parser.add_argument('--workdir', help='where runs write (default: a temporary directory)')
  return parser


def ours_command(output_root, data_root, train_steps, eval_steps, *overrides):
  return [
    sys.executable,
    '-m',
    'pipeline',
    'run',
    '--set',
    f'output_root={output_root}',
    '--set',
    f'data_root={data_root}',
    '--set',
    f'trainer.train_steps={train_steps}',
    '--set',
    f'trainer.eval_steps={eval_steps}',
    '--set',
    f'trainer.hparams.batch_size={ANCHOR_BATCH_SIZE}',
    *[arg for o in overrides for arg in ('--set', o)],
  ]


def anchor_command(output_root, data_root, train_steps, eval_steps, beam_args=()):
  return [
    sys.executable,
    '-m',
    'bench.anchor',
    output_root,
    data_root,
    str(train_steps),
    str(eval_steps),
    *beam_args,
  ]


def _median_components(runs: list[Run]) -> dict:
  names = sorted({name for run in runs for name in run.components})
  return {
    name: round(statistics.median(r.components.get(name, 0.0) for r in runs), 2) for name in names
  }


def _summary(runs: list[Run]) -> dict:
  aucs = [r.auc for r in runs if r.auc is not None]
  return {
    'wall_s': round(statistics.median(r.wall_s for r in runs), 2),
    'walls_s': [round(r.wall_s, 2) for r in runs],
    'peak_rss_mb': round(max(r.peak_rss_mb for r in runs), 1),
    'auc': round(statistics.median(aucs), 4) if aucs else None,
    'failed_runs': sum(not completed(r.returncode) for r in runs),
    'per_component': _median_components(runs),
  }


def resample(data_dir: str, factor: int, target: str) -> int:
  """Writes `factor` times the rows of `data_dir`, drawn with replacement; returns the count."""
  rows, header = [], None
  for name in sorted(os.listdir(data_dir)):
    with open(os.path.join(data_dir, name), newline='') as f:
      reader = csv.reader(f)
      header = next(reader)
      rows.extend(reader)
  os.makedirs(target, exist_ok=True)
  count = len(rows) * factor
  rng = random.Random(factor)
  with open(os.path.join(target, 'data.csv'), 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(header)
    for _ in range(count):
      writer.writerow(rows[rng.randrange(len(rows))])
  return count


def _first_run(factor: int, args, workdir, name: str):
  """Resamples `factor` times the data and runs ours on it from nothing:
  (data dir, output root, rows, Run, eval rows of its summary or None)."""
  data = os.path.join(workdir, f'data_x{factor}')
  rows = resample(args.data, factor, data)
  root = os.path.join(workdir, f'{name}_x{factor}')
  run = measure(
    ours_command(root, data, args.scale_train_steps, args.eval_steps),
    root,
    os.path.join(workdir, f'{name}_x{factor}.log'),
  )
  with open(os.path.join(root, 'latest_summary.json')) as f:
    eval_rows = json.load(f)['metrics'].get('example_count')
  return data, root, rows, run, eval_rows


def scaling(scales, args, workdir, results: dict, save) -> None:
  """Adds one entry per data multiple to `results`, calling `save()` after each.

  Each multiple runs twice: from nothing, then with one more train step, so
  the Trainer and the Evaluator run again with the first run's model serving
  (the Evaluator then evaluates both models and compares them, as in every
  retraining run)."""
  for factor in scales:
    data, root, rows, run, eval_rows = _first_run(factor, args, workdir, 'scale')
    eval_rows = eval_rows or rows
    compared = measure(
      ours_command(root, data, args.scale_train_steps + 1, args.eval_steps),
      root,
      os.path.join(workdir, f'scale_x{factor}_compared.log'),
    )

    def per_1000(seconds, n):
      return round(1000 * seconds / n, 4)

    results[f'x{factor}'] = {
      'rows': rows,
      'eval_rows': eval_rows,
      'wall_s': round(run.wall_s, 2),
      'peak_rss_mb': round(max(run.peak_rss_mb, compared.peak_rss_mb), 1),
      'seconds': {k: round(v, 2) for k, v in run.components.items()},
      'compared_seconds': {k: round(v, 2) for k, v in compared.components.items()},
      'seconds_per_1000_examples': {
        'ingest': per_1000(
          run.components.get('CsvExampleGen', 0) + run.components.get('StatisticsGen', 0), rows
        ),
        'transform': per_1000(run.components.get('Transform', 0), rows),
        'evaluation': per_1000(run.components.get('Evaluator', 0), eval_rows),
        'evaluation_compared': per_1000(compared.components.get('Evaluator', 0), eval_rows),
      },
    }
    save()
    print(f'scaling x{factor}: {rows} rows, {run.wall_s:.1f} s', flush=True)


def once(factor: int, args, workdir) -> dict:
  """One run from nothing on `factor` times the data: the record of a scale
  too long to measure at every bench (no second, compared run)."""
  load_before = os.getloadavg()  # before the resampling, which loads a CPU
  _, _, rows, run, eval_rows = _first_run(factor, args, workdir, 'once')
  return {
    **_section_stamp(),
    'factor': factor,
    'rows': rows,
    'eval_rows': eval_rows,
    'train_steps': args.scale_train_steps,
    'exit': run.returncode,
    'wall_s': round(run.wall_s, 1),
    'peak_rss_mb': round(run.peak_rss_mb, 1),
    'seconds': {k: round(v, 1) for k, v in run.components.items()},
    'auc': run.auc,
    'load_before': [round(x, 2) for x in load_before],
    'load_after': [round(x, 2) for x in os.getloadavg()],
  }


def training_throughput(workers_list, args, workdir, results: dict, save) -> None:
  """Training examples per second, single process and on local clusters.

  All runs share one output root (the last side-by-side one, if any), so
  only the Trainer and what follows it run again. The rate is the chief's:
  global steps times batch size over the wall time of train_and_evaluate,
  which includes the final evaluation and export but not process start-up.
  """
  root = os.path.join(workdir, f'ours_{args.reps - 1}' if args.reps else 'throughput')
  for workers in workers_list:
    name = 'single_process' if workers == 0 else f'{workers}_workers_1_ps'
    cluster = (
      ['trainer.cluster=local', f'trainer.workers={workers}', 'trainer.parameter_servers=1']
      if workers
      else []
    )
    run = measure(
      ours_command(
        root,
        args.data,
        args.throughput_steps,
        args.eval_steps,
        'trainer.warm_start=false',
        *cluster,
      ),
      root,
      os.path.join(workdir, f'throughput_{name}.log'),
    )
    with open(os.path.join(root, 'latest_summary.json')) as f:
      training = json.load(f).get('training') or {}
    results[name] = {
      'examples_per_second': training.get('examples_per_second'),
      'training_seconds': training.get('seconds'),
      'trainer_component_s': round(run.components.get('Trainer', 0.0), 2),
      'train_steps': args.throughput_steps,
      'batch_size': ANCHOR_BATCH_SIZE,
      'exit': run.returncode,
    }
    save()
    print(f'throughput {name}: {training.get("examples_per_second")} examples/s', flush=True)


def machine() -> dict:
  """What the numbers were measured on: cores, load now, commit."""
  commit = subprocess.run(
    ['git', '-C', str(PROJECT_ROOT), 'rev-parse', '--short', 'HEAD'],
    capture_output=True,
    text=True,
    check=False,
  ).stdout.strip()
  # The bench's own outputs do not count: an earlier bench in this clone wrote them.
  own = [f':(exclude){path.relative_to(PROJECT_ROOT)}' for path in (RESULTS, document.DOC)]
  status = ['status', '--porcelain', '--untracked-files=no', '--', '.', *own]
  dirty = subprocess.run(
    ['git', '-C', str(PROJECT_ROOT), *status], capture_output=True, text=True, check=False
  ).stdout.strip()
  return {
    'cpus': os.cpu_count(),
    'load_before': [round(x, 2) for x in os.getloadavg()],
    'commit': (commit + ('+changes' if dirty else '')) or None,
    'python': sys.version.split()[0],
  }


# Measured in runs of their own; a side-by-side run that does not re-measure
# them keeps the earlier ones, each with its own date and commit.
SEPARATE_SECTIONS = ('scaling', 'training_throughput', 'once')


def _section_stamp() -> dict:
  return {'date': time.strftime('%Y-%m-%d %H:%M:%S'), 'commit': machine()['commit']}


def earlier_sections(path) -> dict:
  """The scaling and throughput sections of the results file at `path`, if any."""
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    earlier = json.load(f)
  return {key: earlier[key] for key in SEPARATE_SECTIONS if key in earlier}


def quiet_warning(before: list[float], cpus: int) -> str | None:
  """A warning when the machine was busy before the bench, else None."""
  # Work that ended a minute ago still slows the next runs, ours (short)
  # more than the anchor's, though the 1-minute average has fallen.
  for minutes, load, per_cpu, why in (
    (1, before[0], QUIET_LOAD_PER_CPU, 'other work shared the cores'),
    (5, before[1], RECENT_LOAD_PER_CPU, 'other work had just ended'),
  ):
    limit = per_cpu * cpus
    if load > limit:
      return (
        f'the {minutes}-minute load average was {load:.2f} before the bench (quiet: <= '
        f'{limit:.2f} on {cpus} CPUs): {why}, the ratio is not a fair one'
      )
  return None


def _write(path, result):
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path + '.tmp', 'w') as f:
    json.dump(result, f, indent=2)
  os.replace(path + '.tmp', path)


def side_by_side(args, workdir) -> dict:
  """Anchor and ours alternately, `args.reps` times each, then a cached rerun."""
  before = machine()
  warning = quiet_warning(before['load_before'], before['cpus'])
  anchor_beam_args = args.anchor_beam_args.split()
  if anchor_beam_args:
    warning = '; '.join(
      filter(None, [warning, 'the anchor ran with --anchor-beam-args: the ratio is no measurement'])
    )
  if warning:
    print(f'warning: {warning}', flush=True)
  runs = {'anchor': [], 'ours': []}
  commands = {
    'anchor': functools.partial(anchor_command, beam_args=anchor_beam_args),
    'ours': ours_command,
  }
  for rep in range(args.reps):
    for name in ('anchor', 'ours'):  # alternately, so drift hits both alike
      root = os.path.join(workdir, f'{name}_{rep}')
      run = measure(
        commands[name](root, args.data, args.train_steps, args.eval_steps),
        root,
        os.path.join(workdir, f'{name}_{rep}.log'),
      )
      runs[name].append(run)
      print(
        f'rep {rep + 1}/{args.reps} {name}: {run.wall_s:.1f} s, AUC {run.auc}, '
        f'exit {run.returncode}',
        flush=True,
      )
  # The same pipeline again on the last output root: all served from the cache.
  last = os.path.join(workdir, f'ours_{args.reps - 1}')
  cached = measure(
    ours_command(last, args.data, args.train_steps, args.eval_steps),
    last,
    os.path.join(workdir, 'ours_cached.log'),
  )
  result = {
    'date': time.strftime('%Y-%m-%d %H:%M:%S'),
    'machine': {**before, 'load_after': [round(x, 2) for x in os.getloadavg()]},
    'warning': warning,
    'reps': args.reps,
    # Set only by smoke tests: the anchor then did not run as TFX ships it.
    'anchor_beam_args': anchor_beam_args or None,
    'work': {
      'train_steps': args.train_steps,
      'eval_steps': args.eval_steps,
      'batch_size': ANCHOR_BATCH_SIZE,
      'data': args.data,
    },
    'anchor': _summary(runs['anchor']),
    'ours': _summary(runs['ours']),
    'cached_rerun_s': round(cached.wall_s, 2),
  }
  result['ratio_wall'] = round(result['ours']['wall_s'] / result['anchor']['wall_s'], 3)
  result.update(
    ours_wall_s=result['ours']['wall_s'],
    anchor_wall_s=result['anchor']['wall_s'],
    ours_auc=result['ours']['auc'],
    anchor_auc=result['anchor']['auc'],
    per_component={
      'anchor': result['anchor']['per_component'],
      'ours': result['ours']['per_component'],
    },
  )
  return result


def main(argv=None) -> int:
  args = _parser().parse_args(argv)
  workdir = args.workdir or tempfile.mkdtemp(prefix='bench-')
  os.makedirs(workdir, exist_ok=True)
  try:
    if args.reps:
      result = {**earlier_sections(args.output), **side_by_side(args, workdir)}
    else:
      # Re-measure only the phases below, keeping the rest of the results file.
      with open(args.output) as f:
        result = json.load(f)

    # Saved now and after each later run: they are long, and an interrupted
    # one must not lose what was measured before it.
    def save():
      return _write(args.output, result)

    save()
    if args.reps:
      print(document.side_by_side_table(result), flush=True)
    if args.throughput_steps:
      result['training_throughput'] = _section_stamp()
      training_throughput(
        [int(w) for w in args.throughput_workers.split(',') if w.strip()],
        args,
        workdir,
        result['training_throughput'],
        save,
      )
    if args.once:
      result['once'] = once(args.once, args, workdir)
      save()
      print(f'once x{args.once}: {result["once"]["wall_s"]:.1f} s', flush=True)
    scales = [int(s) for s in args.scales.split(',') if s.strip()]
    if scales:
      result['scaling'] = {**_section_stamp(), 'train_steps': args.scale_train_steps}
      scaling(scales, args, workdir, result['scaling'], save)
  finally:
    if not args.workdir:
      shutil.rmtree(workdir, ignore_errors=True)
  doc = args.doc or (document.DOC if pathlib.Path(args.output) == RESULTS else None)
  if doc:
    print(f'written whole from the results: {document.write(result, doc)}', flush=True)
  print(f'ratio_wall {result.get("ratio_wall")}; results in {args.output}')
  if result.get('warning'):
    print(f'warning: {result["warning"]}')
  failed = sum(result[name]['failed_runs'] for name in ('anchor', 'ours'))
  failed += sum(
    1
    for run in result.get('training_throughput', {}).values()
    if isinstance(run, dict) and not completed(run.get('exit', 0))
  )
  failed += not completed(result.get('once', {}).get('exit', 0))
  return 0 if not failed else 1
