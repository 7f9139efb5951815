"""A run's report (`runs/<run id>/report.html`) and the index of runs (`runs/index.html`).

Everything a person needs to see why a model was or was not pushed: the
decision and the difference that made it, every metric overall and per
slice beside the serving model's, both models' calibration, the training
loss, the data (TFDV's statistics, drift, anomalies), the parameters, and
the gated metric over every run. Rendered from Jinja2 templates
(`templates/`); plots are matplotlib PNGs embedded as data URIs, so a page
opens from disk with no server.
"""

import base64
import glob
import io
import os

import jinja2

from components import ids
from pipeline.config import Config
from pipeline.record import CACHED, EXECUTED, Gate, Outcome, RunSummary, Training

REPORT = 'report.html'
INDEX = 'index.html'
_CANDIDATE, _SERVING, _THRESHOLD, _PUSHED = '#1f77b4', '#7f7f7f', '#d62728', '#2ca02c'


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


def _plt():
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  return plt


def _png(figure) -> str:
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=90, bbox_inches='tight')
  _plt().close(figure)
  return 'data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode()


def _zoom(axis, values, floor: float = 0.002):
  """Limits the value axis to `values` with a margin, so a small difference shows."""
  values = [v for v in values if v is not None]
  low, high = min(values), max(values)
  margin = max((high - low) * 0.25, floor)
  axis.set_ylim(low - margin, high + margin)


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


def _gate_plot(gate: Gate | None) -> str | None:
  """Left: candidate, serving model and threshold on an axis zoomed to them.
  Right: candidate minus serving with its 95% interval, against no change
  and the largest drop allowed: the comparison that blessed or held back."""
  if not gate or gate.candidate is None:
    return None
  plt = _plt()
  change = gate.change
  figure, axes = plt.subplots(1, 2 if change else 1, figsize=(9 if change else 4.5, 2.6))
  axes = axes if change else [axes]
  axis = axes[0]
  names, values, colors = ['candidate'], [gate.candidate], [_CANDIDATE]
  if gate.serving is not None:
    names.append('serving')
    values.append(gate.serving)
    colors.append(_SERVING)
  axis.scatter(names, values, color=colors, s=60, zorder=3)
  for name, value in zip(names, values, strict=True):
    axis.annotate(f'{value:.4f}', (name, value), textcoords='offset points', xytext=(8, 0))
  if gate.threshold is not None:
    axis.axhline(gate.threshold, color=_THRESHOLD, linestyle=':', label='threshold')
    axis.legend(fontsize=8, loc='lower right')
  _zoom(axis, [*values, gate.threshold])
  axis.set_xlim(-0.5, len(names) - 0.5)
  axis.set_title(gate.metric, fontsize=10)
  if change:
    axis = axes[1]
    sign = 1 if gate.higher_is_better else -1
    diff, low, high = change.diff, change.low, change.high
    axis.errorbar([diff], [0], xerr=[[diff - low], [high - diff]], fmt='o', color=_CANDIDATE)
    axis.axvline(0, color=_SERVING, label='no change')
    allowed = -sign * (gate.max_change or 0.0)
    axis.axvline(allowed, color=_THRESHOLD, linestyle=':', label='largest drop allowed')
    span = max(abs(low), abs(high), abs(allowed), 0.001) * 1.3
    axis.set_xlim(-span, span)
    axis.locator_params(axis='x', nbins=5)
    axis.xaxis.set_major_formatter('{x:+.4f}')
    axis.set_yticks([])
    axis.set_title(f'candidate \N{MINUS SIGN} serving: {change.verdict}', fontsize=10)
    axis.legend(fontsize=8, loc='upper left')
  figure.tight_layout()
  return _png(figure)


def _metrics(summary: RunSummary) -> dict:
  metrics, baseline = summary.metrics, summary.baseline_metrics
  if not metrics:
    return _section('metrics', 'Metrics', note='No evaluation in this run.')
  rows = [
    [name, value, baseline.get(name), _delta(value, baseline.get(name))]
    for name, value in metrics.items()
  ]
  plotted = [n for n, v in metrics.items() if n != 'example_count' and isinstance(v, float)]
  plt = _plt()
  figure, axes = plt.subplots(1, len(plotted), figsize=(1.9 * len(plotted), 2.4), squeeze=False)
  for axis, name in zip(axes[0], plotted, strict=True):
    pair = [metrics[name], baseline.get(name)]
    axis.scatter(
      ['cand.', 'serv.'][: 1 + (pair[1] is not None)],
      [v for v in pair if v is not None],
      color=[_CANDIDATE, _SERVING][: 1 + (pair[1] is not None)],
      s=40,
      zorder=3,
    )
    _zoom(axis, pair)
    axis.set_xlim(-0.6, 1.6)
    axis.set_title(name, fontsize=10)
    axis.tick_params(labelsize=8)
  figure.tight_layout()
  return _section(
    'metrics',
    'Metrics',
    tables=[
      {'caption': None, 'header': ['metric', 'candidate', 'serving', 'difference'], 'rows': rows}
    ],
    plots=[{'uri': _png(figure), 'alt': 'each metric, candidate and serving, on its own axis'}],
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
  plt = _plt()
  figure, (top, bottom) = plt.subplots(
    2, 1, figsize=(max(6, 0.4 * len(names)), 4.2), sharex=True, height_ratios=[2, 1]
  )
  positions = list(range(len(names)))
  candidate = [slices[n].get(metric) for n in names]
  serving = [(baseline.get(n) or {}).get(metric) for n in names]
  top.plot(positions, candidate, 'o', color=_CANDIDATE, label='candidate')
  if any(v is not None for v in serving):
    top.plot(
      positions,
      [v if v is not None else float('nan') for v in serving],
      'o',
      markerfacecolor='none',
      color=_SERVING,
      label='serving',
    )
    deltas = [_delta(c, s) for c, s in zip(candidate, serving, strict=True)]
    bottom.bar(
      positions,
      [d or 0.0 for d in deltas],
      color=[_PUSHED if (d or 0) >= 0 else _THRESHOLD for d in deltas],
    )
  bottom.axhline(0, color=_SERVING, linewidth=0.8)
  bottom.set_ylabel('difference', fontsize=8)
  _zoom(top, candidate + serving)
  top.set_ylabel(metric)
  top.legend(fontsize=8)
  bottom.set_xticks(positions)
  bottom.set_xticklabels(
    [n.split('=', 1)[-1] for n in names], fontsize=8, rotation=90 if len(names) > 30 else 0
  )
  bottom.set_xlabel(names[0].split('=', 1)[0])
  figure.tight_layout()
  return _section(
    'slices',
    'Per slice',
    texts=[
      (
        'Every metric per slice, and its difference (\N{GREEK CAPITAL LETTER DELTA}) from '
        "the serving model's on the same rows."
      )
    ],
    plots=[{'uri': _png(figure), 'alt': f'{metric} per slice, and its difference from serving'}],
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
  plt = _plt()
  figure, axis = plt.subplots(figsize=(4.2, 4))
  axis.plot([0, 1], [0, 1], color='#cccccc', linestyle='--', label='perfectly calibrated')
  for name, color, marker in (('candidate', _CANDIDATE, 'o'), ('serving', _SERVING, 's')):
    points = curves[name]
    if points:
      axis.plot(
        [p[0] for p in points], [p[1] for p in points], marker=marker, color=color, label=name
      )
  axis.set_xlabel('mean prediction')
  axis.set_ylabel('fraction of positives')
  axis.legend(fontsize=8)
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
    plots=[{'uri': _png(figure), 'alt': 'calibration of the candidate and the serving model'}],
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
  plt = _plt()
  figure, axis = plt.subplots(figsize=(6, 2.8))
  train.sort()
  axis.plot([s for s, _ in train], [v for _, v in train], color=_CANDIDATE, label='training loss')
  if evaluation:
    evaluation.sort()
    axis.plot(
      [s for s, _ in evaluation],
      [v for _, v in evaluation],
      'o',
      color=_THRESHOLD,
      label='eval loss',
    )
  axis.set_xlabel('step')
  axis.set_ylabel('loss')
  axis.legend(fontsize=8)
  return _section(
    'training', 'Training', texts=[warm], note=note, plots=[{'uri': _png(figure), 'alt': 'loss'}]
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


def _trend_plot(timeline: list[RunSummary], metric: str, threshold: float) -> str | None:
  """The gated metric of every evaluated run by run id, the serving model's
  at that time, the threshold, pushes and rollbacks."""
  evaluated = [r for r in timeline if r.kind != 'rollback']
  if not evaluated:
    return None
  plt = _plt()
  figure, axis = plt.subplots(figsize=(max(6, 0.55 * len(timeline)), 3.2))
  xs = {r.run_id: i for i, r in enumerate(timeline)}
  points = [(xs[r.run_id], r.gate.candidate) for r in evaluated]
  axis.plot(*zip(*points, strict=True), color=_CANDIDATE, marker='o', label='candidate')
  serving = [(xs[r.run_id], r.gate.serving) for r in evaluated if r.gate.serving is not None]
  if serving:
    axis.step(*zip(*serving, strict=True), where='mid', color=_SERVING, label='serving then')
  pushed = [(xs[r.run_id], r.gate.candidate) for r in evaluated if r.pushed_version]
  if pushed:
    axis.plot(
      *zip(*pushed, strict=True),
      'o',
      markersize=11,
      markerfacecolor='none',
      color=_PUSHED,
      label='pushed',
    )
  rollbacks = [xs[r.run_id] for r in timeline if r.kind == 'rollback']
  for i, x in enumerate(rollbacks):
    axis.axvline(x, color='#9467bd', linestyle='--', label='rollback' if i == 0 else None)
  axis.axhline(threshold, color=_THRESHOLD, linestyle=':', label='threshold')
  _zoom(axis, [v for _, v in points] + [v for _, v in serving] + [threshold])
  axis.set_xticks(list(xs.values()))
  axis.set_xticklabels(
    [r.run_id[4:13].replace('T', ' ') for r in timeline], rotation=45, ha='right', fontsize=7
  )
  axis.set_xlabel('run (month-day, hour-minute)')
  axis.set_ylabel(metric)
  axis.legend(fontsize=7, loc='best')
  figure.tight_layout()
  return _png(figure)


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
    plots=[{'uri': _trend_plot(timeline, metric, threshold), 'alt': f'{metric} over runs'}],
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
      gate_plot=None if nothing_new else _gate_plot(summary.gate),
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
  from components import serving

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
  latest = serving.latest(config.push_dir)
  return (
    _environment()
    .get_template('index.html.j2')
    .render(
      pipeline_name=config.pipeline_name,
      runs=rows,
      runs_dir=str(config.runs_dir),
      metric=config.gate_metric,
      serving=f'version {latest.version} ({latest.path})' if latest else None,
      trend_plot=_trend_plot(_timeline(None, runs), config.gate_metric, config.evaluator.threshold),
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
