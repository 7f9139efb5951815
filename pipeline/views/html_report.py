"""A run's report (`runs/<run id>/report.html`) and the index of runs (`runs/index.html`).

Everything a person needs to see why a model was or was not pushed: the
decision and the difference that made it, every metric overall and per
slice beside the serving model's, both models' calibration, the training
loss, the data (TFDV's statistics, drift, anomalies), the parameters, and
the gated metric over every run. Rendered from Jinja2 templates
(`templates/`); plots are matplotlib PNGs embedded as data URIs, so a page
opens from disk with no server.
"""

import glob
import os

import jinja2

from components import ids
from pipeline.config import Config
from pipeline.record import CACHED, EXECUTED, Outcome, RunSummary, Training
from pipeline.views import plots

REPORT = 'report.html'
INDEX = 'index.html'


def _cell(value) -> str:
  if value is None or value == '':
    return '' if value == '' else '\N{EN DASH}'
  if isinstance(value, bool):
    return 'yes' if value else ''
  if isinstance(value, float):
    return f'{value:.4f}' if abs(value) < 1000 else f'{value:.4g}'
  return str(value)


def _environment() -> jinja2.Environment:
  environment = jinja2.Environment(
    loader=jinja2.PackageLoader('pipeline.views', 'templates'),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
  )
  environment.filters['cell'] = _cell
  return environment


def _delta(candidate, serving):
  if isinstance(candidate, (int, float)) and isinstance(serving, (int, float)):
    return candidate - serving
  return None


def _presence(common, examples: int) -> tuple[int, float]:
  """(rows with a value, the share of rows without one) from TFDV's common stats.

  An empty CSV cell is a feature with no values, which TFDV counts as
  present (`num_non_missing`) with 0 values; for a column of at most one
  value per row, the rows with a value are its total number of values.
  """
  present = common.tot_num_values if common.max_num_values <= 1 else common.num_non_missing
  return present, 1 - present / max(examples, 1)


def _section(id_, title, *, texts=(), tables=(), plots=(), note=None, pre=None) -> dict:
  return {
    'id': id_,
    'title': title,
    'texts': [t for t in texts if t],
    'tables': list(tables),
    'plots': [p for p in plots if p['uri']],
    'note': note,
    'pre': pre,
  }


def _decision(summary: RunSummary) -> dict:
  outcome = summary.outcome
  bad = (Outcome.DATA_REFUSED, Outcome.FAILED)
  decision = {
    'css': 'good' if outcome is Outcome.PUSHED else 'bad' if outcome in bad else 'neutral',
    'text': outcome.text if outcome else summary.status,
    'gate': None,
    'blessing': None,
    'pushed': None,
    'error': summary.error,
  }
  gate = summary.gate
  if gate and gate.candidate is not None:
    serving = _cell(gate.serving) if gate.serving is not None else 'no model serving'
    decision['gate'] = (
      f'{gate.metric}: candidate {_cell(gate.candidate)}, serving {serving}, '
      f'threshold {_cell(gate.threshold)}'
    )
  if summary.blessing_reason:
    decision['blessing'] = (
      f'blessed: {"yes" if summary.blessed else "no"} ({summary.blessing_reason})'
    )
  if summary.pushed_path:
    decision['pushed'] = f'pushed: {summary.pushed_path}'
  elif summary.not_pushed_reason:
    decision['pushed'] = f'not pushed: {summary.not_pushed_reason}'
  return decision


def _metrics(summary: RunSummary) -> dict:
  metrics, baseline = summary.metrics, summary.baseline_metrics
  if not metrics:
    return _section('metrics', 'Metrics', note='No evaluation in this run.')
  rows = [
    [name, value, baseline.get(name), _delta(value, baseline.get(name))]
    for name, value in metrics.items()
  ]
  return _section(
    'metrics',
    'Metrics',
    tables=[
      {'caption': None, 'header': ['metric', 'candidate', 'serving', 'difference'], 'rows': rows}
    ],
    plots=[{'uri': plots.metrics(metrics, baseline), 'alt': 'each metric, candidate and serving'}],
  )


def _slices(summary: RunSummary, metric: str) -> dict:
  slices, baseline = summary.slices, summary.baseline_slices
  if not slices:
    return _section('slices', 'Per slice', note='No slices (evaluator.slice_features is empty).')
  names = list(slices)
  metric_names = [m for m in next(iter(slices.values())) if m != 'example_count']
  header = ['slice', 'examples']
  for name in metric_names:
    header += [name, f'{name} \N{GREEK CAPITAL LETTER DELTA}']
  rows = []
  for name in names:
    row = [name, slices[name].get('example_count')]
    for m in metric_names:
      value = slices[name].get(m)
      row += [value, _delta(value, (baseline.get(name) or {}).get(m))]
    rows.append(row)
  candidate = [slices[n].get(metric) for n in names]
  serving = [(baseline.get(n) or {}).get(metric) for n in names]
  uri = plots.slices(names, candidate, serving, metric)
  return _section(
    'slices',
    'Per slice',
    texts=[
      (
        'Every metric per slice, and its difference (\N{GREEK CAPITAL LETTER DELTA}) from '
        "the serving model's on the same rows."
      )
    ],
    plots=[{'uri': uri, 'alt': f'{metric} per slice, and its difference from serving'}],
    tables=[{'caption': None, 'header': header, 'rows': rows}],
  )


def _calibration_points(plots) -> list[tuple[float, float, float]]:
  """(mean prediction, fraction of positives, weight) in ten bins of TFMA's histogram."""
  bins = [[0.0, 0.0, 0.0] for _ in range(10)]  # weight, label sum, prediction sum
  for plot in plots:
    for bucket in plot.calibration_histogram_buckets.buckets:
      weight = bucket.num_weighted_examples.value
      if not weight:
        continue
      index = min(max(int(bucket.lower_threshold_inclusive * 10), 0), 9)
      bins[index][0] += weight
      bins[index][1] += bucket.total_weighted_label.value
      bins[index][2] += bucket.total_weighted_refined_prediction.value
  return [(p / w, label / w, w) for w, label, p in bins if w]


def _calibration(evaluation_uri: str | None) -> dict:
  """Both models' calibration: mean label against mean prediction in ten bins."""
  if not evaluation_uri or not os.path.exists(evaluation_uri):
    return _section('calibration', 'Calibration', note='No evaluation in this run.')
  from pipeline.service.collect import model_plots

  curves = {
    name: _calibration_points(model_plots(evaluation_uri, baseline))
    for name, baseline in (('candidate', False), ('serving', True))
  }
  if not curves['candidate']:
    return _section(
      'calibration', 'Calibration', note='No calibration plot for this task (binary models only).'
    )
  rows = [
    [f'{i / 10:.1f}\N{EN DASH}{(i + 1) / 10:.1f}']
    + [
      next(
        (
          f'{p[1]:.3f} ({p[0]:.3f}, {int(p[2])} rows)'
          for p in curves[name]
          if int(p[0] * 10) == i or (i == 9 and p[0] >= 1)
        ),
        '',
      )
      for name in ('candidate', 'serving')
    ]
    for i in range(10)
  ]
  return _section(
    'calibration',
    'Calibration',
    plots=[{'uri': plots.calibration(curves), 'alt': 'calibration of both models'}],
    tables=[
      {
        'caption': 'Fraction of positives (mean prediction, rows) per bin of prediction:',
        'header': ['prediction', 'candidate', 'serving'],
        'rows': rows,
      }
    ],
  )


def _scalars(event_file: str, tag: str) -> list[tuple[int, float]]:
  import tensorflow as tf

  points = []
  for event in tf.compat.v1.train.summary_iterator(event_file):
    for value in event.summary.value:
      if value.tag == tag:
        number = (
          value.simple_value
          if value.HasField('simple_value')
          else float(tf.make_ndarray(value.tensor))
        )
        points.append((event.step, number))
  return points


def _training(training: Training | None) -> dict:
  model_run = training.model_run if training else None
  warm = training.warm_start if training else None
  if not model_run or not os.path.isdir(model_run):
    return _section('training', 'Training', note='No training in this run.', texts=[warm])
  train, evaluation = [], []
  for path in glob.glob(os.path.join(model_run, '**', 'events.out.tfevents.*'), recursive=True):
    (evaluation if 'eval' in os.path.basename(os.path.dirname(path)) else train).extend(
      _scalars(path, 'loss')
    )
  note = f'Event files: {model_run} (`make tensorboard` shows every run side by side).'
  if not train:
    return _section('training', 'Training', note='The event files hold no loss.', texts=[warm])
  return _section(
    'training',
    'Training',
    texts=[warm],
    note=note,
    plots=[{'uri': plots.loss(sorted(train), sorted(evaluation)), 'alt': 'loss'}],
  )


def _statistics_rows(statistics_uri: str | None) -> list[list]:
  path = os.path.join(statistics_uri or '', 'Split-train', 'FeatureStats.pb')
  if not statistics_uri or not os.path.exists(path):
    return []
  import tensorflow_data_validation as tfdv

  rows = []
  for dataset in tfdv.load_stats_binary(path).datasets:
    for feature in dataset.features:
      name = '.'.join(feature.path.step)
      if feature.HasField('num_stats'):
        n = feature.num_stats
        present, missing = _presence(n.common_stats, dataset.num_examples)
        numbers = [n.mean, n.std_dev, n.min, n.max] if present else [None] * 4
        rows.append([name, 'number', present, missing, *numbers, ''])
      elif feature.HasField('string_stats'):
        st = feature.string_stats
        present, missing = _presence(st.common_stats, dataset.num_examples)
        top = st.top_values[0].value if st.top_values else ''
        values = f'{st.unique} values; most frequent {top!r}' if present else ''
        rows.append([name, 'text', present, missing, None, None, None, None, values])
  return rows


def _data(summary: RunSummary, statistics_uri: str | None) -> dict:
  texts, tables, pre = [], [], None
  spans = summary.spans
  if spans:
    text = f'Trained on span(s) {", ".join(map(str, spans.train))}; evaluated on span {spans.eval}'
    if spans.previous is not None:
      text += f'; compared for drift with span {spans.previous}'
    texts.append(text + '.')
  rows = _statistics_rows(statistics_uri)
  if rows:
    header = ['feature', 'kind', 'present', 'missing share', 'mean', 'std', 'min', 'max', 'values']
    tables.append(
      {'caption': 'TFDV statistics of the train split:', 'header': header, 'rows': rows}
    )
  drift = summary.drift
  if drift:
    accepted = f' (drift accepted at {drift.accepted_at})' if drift.accepted_at else ''
    tables.append(
      {
        'caption': f'Drift from the previous span{accepted}:',
        'header': ['feature', 'measure', 'distance', 'threshold', 'drifted'],
        'rows': [
          [m['feature'], m['measure'], m['distance'], m['threshold'], bool(m['drifted'])]
          for m in drift.measurements
        ],
      }
    )
  if summary.outcome is Outcome.DATA_REFUSED:
    texts.append('Anomalies:')
    pre = summary.error or ''
  elif any(
    c.name == ids.EXAMPLE_VALIDATOR and c.state in (EXECUTED, CACHED) for c in summary.components
  ):
    texts.append('No anomalies against the schema.')
  note = None if texts or tables else 'No data was read.'
  return _section('data', 'Data', texts=texts, tables=tables, pre=pre, note=note)


def _flatten(value, prefix='') -> dict:
  if isinstance(value, dict) and value:
    flat = {}
    for key, item in value.items():
      flat.update(_flatten(item, f'{prefix}{key}.'))
    return flat
  return {prefix.rstrip('.'): value}


def _parameters(summary: RunSummary) -> dict:
  """The run's config and hyperparameters, beside its metrics."""
  config = summary.config or {}
  if not config:
    return _section('parameters', 'Parameters', note='The record holds no config.')
  flat = _flatten(config)
  hparams = [
    [k.removeprefix('trainer.hparams.'), v]
    for k, v in flat.items()
    if k.startswith('trainer.hparams.')
  ]
  rest = [
    [k, ', '.join(map(str, v)) if isinstance(v, list) else v]
    for k, v in flat.items()
    if not k.startswith('trainer.hparams.')
  ]
  return _section(
    'parameters',
    'Parameters',
    tables=[
      {
        'caption': 'Hyperparameters (trainer.hparams):',
        'header': ['name', 'value'],
        'rows': hparams,
      },
      {'caption': 'Config:', 'header': ['key', 'value'], 'rows': rest},
    ],
  )


def _timeline(summary: RunSummary | None, runs: list[RunSummary]) -> list[RunSummary]:
  """Evaluated runs and rollbacks, oldest first, and this run if it has a gate."""
  records = {r.run_id: r for r in runs}
  if summary:
    records[summary.run_id] = summary
  return [
    r
    for _, r in sorted(records.items())
    if r.kind == 'rollback'
    or (
      r.gate is not None
      and r.gate.candidate is not None
      and (r.outcome in (Outcome.PUSHED, Outcome.NOT_PUSHED) or r is summary)
    )
  ]


def _trend(summary: RunSummary, runs: list[RunSummary], metric: str, threshold: float) -> dict:
  timeline = _timeline(summary, runs)
  if not any(r.kind != 'rollback' for r in timeline):
    return _section('trend', f'{metric} over runs', note='No evaluated run yet.')
  rows = [
    [r.run_id, 'rollback', None, None, r.pushed_version]
    if r.kind == 'rollback'
    else [r.run_id, r.outcome.value, r.gate.candidate, r.gate.serving, r.pushed_version]
    for r in reversed(timeline)
  ]
  header = ['run', 'outcome', 'candidate', 'serving then', 'version pushed']
  return _section(
    'trend',
    f'{metric} over runs',
    plots=[{'uri': plots.trend(timeline, metric, threshold), 'alt': f'{metric} over runs'}],
    tables=[{'caption': None, 'header': header, 'rows': rows}],
  )


def _components(summary: RunSummary) -> dict:
  rows = [[c.name, c.state, f'{c.seconds:.1f}'] for c in summary.components]
  return _section(
    'components',
    'Components',
    tables=[{'caption': None, 'header': ['component', 'state', 'seconds'], 'rows': rows}],
  )


def _neighbours(summary: RunSummary, runs: list[RunSummary], runs_dir) -> tuple:
  """The runs before and after this one that have a report."""
  ids_ = sorted(
    {r.run_id for r in runs if (runs_dir / r.run_id / REPORT).exists()} | {summary.run_id}
  )
  at = ids_.index(summary.run_id)
  return (ids_[at - 1] if at else None), (ids_[at + 1] if at + 1 < len(ids_) else None)


def render(summary: RunSummary, config: Config, runs: list[RunSummary]) -> str:
  """The report of run `summary` as one HTML page; `runs` is this output root's history."""
  metric = config.gate_metric
  nothing_new = summary.outcome is Outcome.NOTHING_NEW
  trend = _trend(summary, runs, metric, config.evaluator.threshold)
  if nothing_new:
    # Every component came from the cache: drawing the plots again would
    # cost a fully cached run most of its time.
    sections = [_metrics(summary), trend, _parameters(summary), _components(summary)]
  else:
    sections = [
      _metrics(summary),
      _slices(summary, metric),
      _calibration(summary.artifacts.get('evaluation')),
      _training(summary.training),
      _data(summary, summary.artifacts.get('statistics')),
      _parameters(summary),
      trend,
      _components(summary),
    ]
  previous, following = _neighbours(summary, runs, config.runs_dir)
  return (
    _environment()
    .get_template('run.html.j2')
    .render(
      run_id=summary.run_id,
      pipeline_name=config.pipeline_name,
      runner=summary.runner or 'local',
      wall_seconds=summary.wall_seconds or 0.0,
      summary_path=str(config.runs_dir / summary.run_id / 'summary.json'),
      decision=_decision(summary),
      cached=(summary.unchanged_since or summary.run_id) if nothing_new else None,
      gate_plot=None if nothing_new else plots.gate(summary.gate),
      sections=sections,
      previous=previous,
      next=following,
    )
  )


def _index_note(r: RunSummary) -> str:
  if r.kind == 'rollback':
    return f'version {r.rolled_back_to} serves again (as {r.pushed_version})'
  if r.unchanged_since:
    return f'nothing changed since {r.unchanged_since}'
  note = r.error or r.not_pushed_reason or (r.gate.reason if r.gate else None) or ''
  return note.splitlines()[0][:160] if note else ''


def render_index(config: Config, runs: list[RunSummary]) -> str:
  """Every run of this output root, newest first, linked to its report."""
  rows = [
    {
      'run_id': r.run_id,
      'report': f'{r.run_id}/{REPORT}' if (config.runs_dir / r.run_id / REPORT).exists() else None,
      'outcome': r.outcome.value if r.outcome else r.status,
      'candidate': r.gate.candidate if r.gate else None,
      'serving': r.gate.serving if r.gate else None,
      'pushed': r.pushed_version,
      'seconds': r.wall_seconds,
      'note': _index_note(r),
    }
    for r in sorted(runs, key=lambda r: r.run_id, reverse=True)
  ]
  # What served at the end of the newest run or rollback that says, from its
  # record: verifying the serving directory again would import TensorFlow.
  ordered = sorted(runs, key=lambda r: r.run_id, reverse=True)
  serving = next((r.serving_path for r in ordered if r.serving_path), None)
  return (
    _environment()
    .get_template('index.html.j2')
    .render(
      pipeline_name=config.pipeline_name,
      runs=rows,
      runs_dir=str(config.runs_dir),
      metric=config.gate_metric,
      serving=serving,
      trend_plot=plots.trend(_timeline(None, runs), config.gate_metric, config.evaluator.threshold),
    )
  )


def write(summary: RunSummary, config: Config, runs: list[RunSummary]):
  """Writes the run's report next to its summary, and the index of runs; returns its path."""
  path = config.runs_dir / summary.run_id / REPORT
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(render(summary, config, runs))
  others = [r for r in runs if r.run_id != summary.run_id]
  write_index(config, [summary, *others])
  return path


def write_index(config: Config, runs: list[RunSummary]):
  """Writes `runs/index.html`; returns its path."""
  path = config.runs_dir / INDEX
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(render_index(config, runs))
  return path
