"""A run's report: one self-contained HTML file (`runs/<run id>/report.html`).

Everything a person needs to see why a model was or was not pushed: the
decision, the metrics overall and per slice beside the serving model's, the
calibration plot (TFMA's plots), the training loss (the Estimator's event
files), the data (TFDV's statistics, drift, anomalies) and the gated
metric's trend over every run. Plots are matplotlib PNGs embedded as data
URIs, so the file opens from disk with no server.
"""

import base64
import glob
import html
import io
import os

from pipeline.config import Config
from pipeline.outcomes import OUTCOME_TEXT

REPORT = 'report.html'
_CANDIDATE, _SERVING = '#1f77b4', '#bbbbbb'
_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0; display: block; overflow-x: auto; }
td, th { padding: 2px 10px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.decision { padding: .8em 1em; border-radius: 6px; }
.good { background: #e6f4ea; } .bad { background: #fdecea; } .neutral { background: #f1f3f4; }
img { max-width: 100%; } pre { background: #f6f6f6; padding: .6em; white-space: pre-wrap; }
.muted { color: #777; }
"""
# Counts the images the browser decoded: what the tests read back from the
# rendered page, and harmless to a reader.
_SCRIPT = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  document.body.setAttribute('data-images-decoded',
      images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length);
  document.body.setAttribute('data-images', images.length);
});
"""


def _plt():
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  return plt


def _png(figure) -> str:
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=90, bbox_inches='tight')
  _plt().close(figure)
  return (
    '<img alt="plot" src="data:image/png;base64,'
    + base64.b64encode(buffer.getvalue()).decode()
    + '">'
  )


def _fmt(value) -> str:
  if value is None:
    return '\N{EN DASH}'
  if isinstance(value, float):
    return f'{value:.4f}' if abs(value) < 1000 else f'{value:.4g}'
  return html.escape(str(value))


def _presence(common, examples: int) -> tuple[int, float]:
  """(rows with a value, the share of rows without one) from TFDV's common stats.

  An empty CSV cell is a feature with no values, which TFDV counts as
  present (`num_non_missing`) with 0 values; for a column of at most one
  value per row, the rows with a value are its total number of values.
  """
  present = common.tot_num_values if common.max_num_values <= 1 else common.num_non_missing
  return present, 1 - present / max(examples, 1)


def _table(header: list[str], rows: list[list]) -> str:
  head = ''.join(f'<th>{html.escape(h)}</th>' for h in header)
  body = ''.join('<tr>' + ''.join(f'<td>{_fmt(c)}</td>' for c in row) + '</tr>' for row in rows)
  return f'<table><tr>{head}</tr>{body}</table>'


def _decision(summary: dict) -> str:
  outcome = summary.get('outcome') or summary.get('status')
  css = {'pushed': 'good', 'data_refused': 'bad', 'failed': 'bad'}.get(outcome, 'neutral')
  parts = [f'<p><b>{html.escape(OUTCOME_TEXT.get(outcome, str(outcome)))}</b></p>']
  gate = summary.get('gate') or {}
  if gate.get('candidate') is not None:
    serving = _fmt(gate.get('serving')) if gate.get('serving') is not None else 'no model serving'
    parts.append(
      f'<p>{html.escape(gate["metric"])}: candidate <b>{_fmt(gate["candidate"])}</b>, '
      f'serving {serving}</p>'
    )
  if summary.get('blessing_reason'):
    parts.append(
      f'<p>blessed: {"yes" if summary.get("blessed") else "no"} '
      f'({html.escape(summary["blessing_reason"])})</p>'
    )
  if summary.get('pushed_path'):
    parts.append(f'<p>pushed: {html.escape(summary["pushed_path"])}</p>')
  elif summary.get('not_pushed_reason'):
    parts.append(f'<p>not pushed: {html.escape(summary["not_pushed_reason"])}</p>')
  if summary.get('error'):
    parts.append(f'<pre>{html.escape(summary["error"])}</pre>')
  return f'<div class="decision {css}">{"".join(parts)}</div>'


def _metrics(summary: dict) -> str:
  metrics, baseline = summary.get('metrics') or {}, summary.get('baseline_metrics') or {}
  if not metrics:
    return '<p class="muted">No evaluation in this run.</p>'
  rows = [[name, value, baseline.get(name)] for name, value in metrics.items()]
  plotted = [
    name
    for name, value in metrics.items()
    if name != 'example_count' and isinstance(value, (int, float))
  ]
  plt = _plt()
  figure, axes = plt.subplots(1, len(plotted), figsize=(2.1 * len(plotted), 2.4), squeeze=False)
  for axis, name in zip(axes[0], plotted, strict=True):
    values = [metrics[name], baseline.get(name) or 0.0]
    axis.bar(['candidate', 'serving'], values, color=[_CANDIDATE, _SERVING])
    axis.set_title(name, fontsize=10)
    axis.tick_params(labelsize=8)
  figure.tight_layout()
  return _table(['metric', 'candidate', 'serving'], rows) + _png(figure)


def _slices(summary: dict, metric: str) -> str:
  slices, baseline = summary.get('slices') or {}, summary.get('baseline_slices') or {}
  if not slices:
    return '<p class="muted">No slices (evaluator.slice_features is empty).</p>'
  names = list(slices)
  rows = [
    [
      name,
      slices[name].get('example_count'),
      slices[name].get(metric),
      (baseline.get(name) or {}).get(metric),
    ]
    for name in names
  ]
  plt = _plt()
  figure, axis = plt.subplots(figsize=(max(6, 0.35 * len(names)), 2.8))
  positions = range(len(names))
  axis.bar(
    [p - 0.2 for p in positions],
    [slices[n].get(metric) or 0 for n in names],
    0.4,
    label='candidate',
    color=_CANDIDATE,
  )
  axis.bar(
    [p + 0.2 for p in positions],
    [(baseline.get(n) or {}).get(metric) or 0 for n in names],
    0.4,
    label='serving',
    color=_SERVING,
  )
  axis.set_xticks(list(positions))
  axis.set_xticklabels([n.split('=', 1)[-1] for n in names], fontsize=8)
  axis.set_xlabel(names[0].split('=', 1)[0])
  axis.set_ylabel(metric)
  axis.legend(fontsize=8)
  return _table(['slice', 'examples', f'{metric} (candidate)', f'{metric} (serving)'], rows) + _png(
    figure
  )


def _calibration(evaluation_uri: str | None) -> str:
  """The overall calibration plot: mean label against mean prediction in ten bins."""
  if not evaluation_uri or not os.path.exists(evaluation_uri):
    return '<p class="muted">No evaluation in this run.</p>'
  from pipeline.report import candidate_plots

  bins = [[0.0, 0.0, 0.0] for _ in range(10)]  # weight, label sum, prediction sum
  for plot in candidate_plots(evaluation_uri):
    for bucket in plot.calibration_histogram_buckets.buckets:
      weight = bucket.num_weighted_examples.value
      if not weight:
        continue
      index = min(max(int(bucket.lower_threshold_inclusive * 10), 0), 9)
      bins[index][0] += weight
      bins[index][1] += bucket.total_weighted_label.value
      bins[index][2] += bucket.total_weighted_refined_prediction.value
  points = [(p / w, label / w, w) for w, label, p in bins if w]
  if not points:
    return '<p class="muted">No calibration plot for this task (binary models only).</p>'
  plt = _plt()
  figure, axis = plt.subplots(figsize=(4, 4))
  axis.plot([0, 1], [0, 1], color=_SERVING, linestyle='--', label='perfectly calibrated')
  axis.plot(
    [p[0] for p in points], [p[1] for p in points], marker='o', color=_CANDIDATE, label='candidate'
  )
  axis.set_xlabel('mean prediction')
  axis.set_ylabel('fraction of positives')
  axis.legend(fontsize=8)
  return _png(figure)


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


def _loss_curve(model_run: str | None) -> str:
  if not model_run or not os.path.isdir(model_run):
    return '<p class="muted">No training in this run.</p>'
  train, evaluation = [], []
  for path in glob.glob(os.path.join(model_run, '**', 'events.out.tfevents.*'), recursive=True):
    (evaluation if 'eval' in os.path.basename(os.path.dirname(path)) else train).extend(
      _scalars(path, 'loss')
    )
  if not train:
    return '<p class="muted">The event files hold no loss.</p>'
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
      color='#d62728',
      label='eval loss',
    )
  axis.set_xlabel('step')
  axis.set_ylabel('loss')
  axis.legend(fontsize=8)
  return (
    _png(figure) + f'<p class="muted">Event files: {html.escape(model_run)} '
    '(<code>make tensorboard</code> shows every run side by side).</p>'
  )


def _data(summary: dict, statistics_uri: str | None) -> str:
  parts = []
  spans = summary.get('spans')
  if spans:
    parts.append(
      f'<p>Trained on span(s) {", ".join(map(str, spans["train"]))}; evaluated on '
      f'span {spans["eval"]}; compared for drift with span {spans["previous"]}.</p>'
      if spans.get('previous') is not None
      else f'<p>Trained on span(s) {", ".join(map(str, spans["train"]))}; evaluated on '
      f'span {spans["eval"]}.</p>'
    )
  path = os.path.join(statistics_uri or '', 'Split-train', 'FeatureStats.pb')
  if statistics_uri and os.path.exists(path):
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
    parts.append(
      '<p>TFDV statistics of the train split:</p>'
      + _table(
        ['feature', 'kind', 'present', 'missing share', 'mean', 'std', 'min', 'max', 'values'], rows
      )
    )
  drift = summary.get('drift')
  if drift:
    accepted = f' (drift accepted at {drift["accepted_at"]})' if drift.get('accepted_at') else ''
    parts.append(
      f'<p>Drift from the previous span{html.escape(accepted)}:</p>'
      + _table(
        ['feature', 'measure', 'distance', 'threshold', 'drifted'],
        [
          [m['feature'], m['measure'], m['distance'], m['threshold'], 'yes' if m['drifted'] else '']
          for m in drift['measurements']
        ],
      )
    )
  if summary.get('outcome') == 'data_refused':
    parts.append(f'<p><b>Anomalies:</b></p><pre>{html.escape(summary.get("error") or "")}</pre>')
  else:
    parts.append(
      '<p>No anomalies against the schema.</p>'
      if summary.get('components')
      and any(
        c['name'] == 'ExampleValidator' and c['state'] in ('executed', 'cached')
        for c in summary['components']
      )
      else ''
    )
  return ''.join(parts) or '<p class="muted">No data was read.</p>'


def _trend(summary: dict, runs: list[dict], metric: str, threshold: float) -> str:
  evaluated = [
    r
    for r in sorted(runs, key=lambda r: r.get('run_id', ''))
    if (r.get('gate') or {}).get('candidate') is not None
    and r.get('outcome') in ('pushed', 'not_pushed')
  ]
  if (
    summary.get('run_id') not in {r.get('run_id') for r in evaluated}
    and (summary.get('gate') or {}).get('candidate') is not None
  ):
    evaluated.append(summary)
  if not evaluated:
    return '<p class="muted">No evaluated run yet.</p>'
  plt = _plt()
  figure, axis = plt.subplots(figsize=(6, 2.8))
  xs = list(range(1, len(evaluated) + 1))
  values = [r['gate']['candidate'] for r in evaluated]
  axis.plot(xs, values, color=_CANDIDATE, marker='o', label=f'candidate {metric}')
  pushed = [
    (x, v) for x, v, r in zip(xs, values, evaluated, strict=True) if r.get('pushed_version')
  ]
  if pushed:
    axis.plot(
      [p[0] for p in pushed],
      [p[1] for p in pushed],
      'o',
      markersize=10,
      markerfacecolor='none',
      color='#2ca02c',
      label='pushed',
    )
  axis.axhline(threshold, color='#d62728', linestyle=':', label='threshold')
  axis.set_xlabel('evaluated run (oldest first)')
  axis.set_ylabel(metric)
  axis.legend(fontsize=8)
  rows = [
    [
      r['run_id'],
      r['gate']['candidate'],
      r['gate'].get('serving'),
      'yes' if r.get('pushed_version') else '',
    ]
    for r in reversed(evaluated)
  ]
  return _png(figure) + _table(['run', f'{metric} (candidate)', 'serving', 'pushed'], rows)


def render(summary: dict, config: Config, runs: list[dict]) -> str:
  """The report of run `summary` as one HTML page; `runs` is this output root's history."""
  artifacts = summary.get('artifacts') or {}
  training = summary.get('training') or {}
  metric = config.gate_metric
  if summary.get('outcome') == 'nothing_new':
    # Every component came from the cache: the plots are those of the run
    # that computed them, and drawing them again would cost a fully cached
    # run most of its time.
    note = (
      '<p class="muted">Every component was served from the cache; the figures are '
      'those of the run that computed them (see <code>python -m pipeline runs</code>).</p>'
    )
    sections = [
      ('Decision', _decision(summary) + note),
      ('Metrics', _metrics(summary)),
      (f'{metric} over runs', _trend(summary, runs, metric, config.evaluator.threshold)),
    ]
  else:
    sections = _full_sections(summary, config, runs, artifacts, training, metric)
  timings = _table(
    ['component', 'state', 'seconds'],
    [[c['name'], c['state'], c.get('seconds')] for c in summary.get('components', [])],
  )
  body = ''.join(f'<h2>{html.escape(title)}</h2>{content}' for title, content in sections)
  return (
    f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Run {summary["run_id"]}'
    f'</title><style>{_CSS}</style><script>{_SCRIPT}</script></head><body>'
    f'<h1>Run {html.escape(summary["run_id"])} · {html.escape(config.pipeline_name)}</h1>'
    f'<p class="muted">{summary.get("runner", "local")} runner, '
    f'{summary.get("wall_seconds", 0):.1f} s; summary: '
    f'{html.escape(str(config.runs_dir / summary["run_id"] / "summary.json"))}</p>'
    f'{body}<h2>Components</h2>{timings}</body></html>'
  )


def _full_sections(summary, config, runs, artifacts, training, metric):
  return [
    ('Decision', _decision(summary)),
    ('Metrics', _metrics(summary)),
    (f'{metric} per slice', _slices(summary, metric)),
    ('Calibration', _calibration(artifacts.get('evaluation'))),
    (
      'Training',
      _loss_curve(training.get('model_run'))
      + (f'<p>{html.escape(training["warm_start"])}</p>' if training.get('warm_start') else ''),
    ),
    ('Data', _data(summary, artifacts.get('statistics'))),
    (f'{metric} over runs', _trend(summary, runs, metric, config.evaluator.threshold)),
  ]


def write(summary: dict, config: Config, runs: list[dict]):
  """Writes the report next to the run's summary; returns its path."""
  path = config.runs_dir / summary['run_id'] / REPORT
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(render(summary, config, runs))
  return path
