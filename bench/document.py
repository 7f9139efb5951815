"""docs/performance.md, written whole from the bench's results
(`bench/results/latest.json`) through `templates/performance.md.j2`: one
dated table per measurement, no history."""

import pathlib

import jinja2

from components.ids import ALL as COMPONENTS
from pipeline.config import PROJECT_ROOT

DOC = PROJECT_ROOT / 'docs' / 'performance.md'


def side_by_side_table(result: dict) -> str:
  """The anchor against ours: total, each component, memory, AUC, the cached rerun."""
  anchor, ours = result['anchor'], result['ours']
  lines = ['| | anchor (TFX taxi) | ours | ours / anchor |', '|---|---|---|---|']

  def row(name, a, o, unit=' s'):
    # A ratio of two near-zero times (SchemaGen, the anchor's Pusher) says nothing.
    ratio = f'{o / a:.2f}' if a and o is not None and min(a, o) >= 0.5 else ''

    def fmt(v):
      return '' if v is None else f'{v:.1f}{unit}'

    lines.append(f'| {name} | {fmt(a)} | {fmt(o)} | {ratio} |')

  row('**total wall**', anchor['wall_s'], ours['wall_s'])
  for name in COMPONENTS:  # our node ids are the anchor's
    row(name, anchor['per_component'].get(name), ours['per_component'].get(name))
  row('peak memory', anchor['peak_rss_mb'], ours['peak_rss_mb'], ' MB')
  lines.append(f'| eval AUC | {anchor["auc"]} | {ours["auc"]} | |')
  lines.append(f'| cached rerun | | {result["cached_rerun_s"]:.1f} s | |')
  return '\n'.join(lines)


def _scaling_rows(scaling: dict) -> list[dict]:
  rows = []
  for key, run in scaling.items():
    if not (key.startswith('x') and key[1:].isdigit() and isinstance(run, dict)):
      continue
    per_1k = run.get('seconds_per_1000_examples') or {}
    rows.append(
      {
        'factor': int(key[1:]),
        'rows': run.get('rows', 0),
        'ingest': per_1k.get('ingest', 0.0),
        'transform': per_1k.get('transform', 0.0),
        'evaluation': per_1k.get('evaluation', 0.0),
        'evaluation_compared': per_1k.get('evaluation_compared'),
        'wall': run.get('wall_s', 0.0),
        'memory_gb': run.get('peak_rss_mb', 0.0) / 1000,
        'run': run,
      }
    )
  return sorted(rows, key=lambda r: r['factor'])


def _largest(rows: list[dict]) -> dict | None:
  if not rows:
    return None
  run = rows[-1]['run']
  seconds = run.get('seconds') or {}
  evaluator = seconds.get('Evaluator') or 0.0
  compared = (run.get('compared_seconds') or {}).get('Evaluator') or 0.0
  return {
    'factor': rows[-1]['factor'],
    'components': ', '.join(
      f'{name} {seconds[name]:.1f} s' for name in COMPONENTS if name in seconds
    ),
    'eval_rows': run.get('eval_rows', 0),
    'eval_rate': round(run.get('eval_rows', 0) / evaluator) if evaluator else 0,
    'compared_rate': round(run.get('eval_rows', 0) / compared) if compared else None,
    # The Beam components' wall seconds per million rows: what grows with the
    # data. StatisticsGen and Transform run side by side.
    'beam_per_million': round(
      1e6
      * (
        seconds.get('CsvExampleGen', 0.0)
        + max(seconds.get('StatisticsGen', 0.0), seconds.get('Transform', 0.0))
      )
      / run['rows'],
      1,
    )
    if run.get('rows')
    else None,
  }


def _throughput_rows(throughput: dict) -> list[dict]:
  return [
    {
      'name': name.replace('_', ' '),
      'steps': (
        f'{run["train_steps"] / run["training_seconds"]:.1f}'
        if run.get('training_seconds')
        else '\N{EN DASH}'
      ),
      'examples': run.get('examples_per_second') or '\N{EN DASH}',
      'exit': run.get('exit'),
    }
    for name, run in throughput.items()
    if isinstance(run, dict)
  ]


def render(result: dict) -> str:
  """The whole of docs/performance.md for `result`."""
  environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(pathlib.Path(__file__).parent / 'templates'),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
  )
  scaling = result.get('scaling') or {}
  rows = _scaling_rows(scaling)
  walls = None
  if len(result['ours'].get('walls_s') or []) > 1:
    walls = {
      side: ', '.join(f'{w:.1f}' for w in sorted(result[side]['walls_s'])) + ' s'
      for side in ('ours', 'anchor')
    }
  throughput = result.get('training_throughput') or {}
  once = result.get('once')
  if once:
    seconds = once.get('seconds') or {}
    once = {
      **once,
      'components': ', '.join(
        f'{name} {seconds[name]:.1f} s' for name in COMPONENTS if name in seconds
      ),
    }
  return environment.get_template('performance.md.j2').render(
    work=result['work'],
    date=result['date'],
    machine=result['machine'],
    reps=result['reps'],
    walls=walls,
    table=side_by_side_table(result),
    warning=result.get('warning'),
    scaling=scaling if rows else None,
    scaling_steps=scaling.get('train_steps', 'a few hundred'),
    scaling_rows=rows,
    largest=_largest(rows),
    throughput=throughput or None,
    throughput_rows=_throughput_rows(throughput),
    once=once,
  )


def write(result: dict, path: pathlib.Path = DOC) -> pathlib.Path:
  """Writes docs/performance.md (or `path`) from `result`; returns its path."""
  path = pathlib.Path(path)
  path.write_text(render(result))
  return path
