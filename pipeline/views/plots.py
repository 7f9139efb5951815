"""The report's plots: matplotlib figures as PNG data URIs, each on axes that
show the difference that matters (zoomed to the values, not from zero)."""

import base64
import io

CANDIDATE, SERVING, THRESHOLD, PUSHED = '#1f77b4', '#7f7f7f', '#d62728', '#2ca02c'


def _subplots(*args, figsize, **kwargs):
  """A figure and its axes, without pyplot: nothing global to close, and
  no import of pyplot's style library (a third of a second)."""
  from matplotlib.figure import Figure

  figure = Figure(figsize=figsize)
  return figure, figure.subplots(*args, **kwargs)


def _png(figure) -> str:
  # Laid out by tight_layout; bbox_inches='tight' would draw each figure a
  # second time to measure it.
  figure.tight_layout()
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=90)
  return 'data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode()


def _zoom(axis, values, floor: float = 0.002):
  """Limits the value axis to `values` with a margin, so a small difference shows."""
  values = [v for v in values if v is not None]
  low, high = min(values), max(values)
  margin = max((high - low) * 0.25, floor)
  axis.set_ylim(low - margin, high + margin)


def gate(gate) -> str | None:
  """Left: candidate, serving model and threshold on an axis zoomed to them.
  Right: candidate minus serving with its 95% interval, against no change
  and the largest drop allowed: the comparison that blessed or held back."""
  if not gate or gate.candidate is None:
    return None
  change = gate.change
  figure, axes = _subplots(1, 2 if change else 1, figsize=(9 if change else 4.5, 2.6))
  axes = axes if change else [axes]
  axis = axes[0]
  names, values, colors = ['candidate'], [gate.candidate], [CANDIDATE]
  if gate.serving is not None:
    names.append('serving')
    values.append(gate.serving)
    colors.append(SERVING)
  axis.scatter(names, values, color=colors, s=60, zorder=3)
  for name, value in zip(names, values, strict=True):
    axis.annotate(f'{value:.4f}', (name, value), textcoords='offset points', xytext=(8, 0))
  if gate.threshold is not None:
    axis.axhline(gate.threshold, color=THRESHOLD, linestyle=':', label='threshold')
    axis.legend(fontsize=8, loc='lower right')
  _zoom(axis, [*values, gate.threshold])
  axis.set_xlim(-0.5, len(names) - 0.5)
  axis.set_title(gate.metric, fontsize=10)
  if change:
    _difference(axes[1], gate, change)
  return _png(figure)


def _difference(axis, gate, change) -> None:
  sign = 1 if gate.higher_is_better else -1
  diff, low, high = change.diff, change.low, change.high
  axis.errorbar([diff], [0], xerr=[[diff - low], [high - diff]], fmt='o', color=CANDIDATE)
  axis.axvline(0, color=SERVING, label='no change')
  allowed = -sign * (gate.max_change or 0.0)
  axis.axvline(allowed, color=THRESHOLD, linestyle=':', label='largest drop allowed')
  span = max(abs(low), abs(high), abs(allowed), 0.001) * 1.3
  axis.set_xlim(-span, span)
  axis.locator_params(axis='x', nbins=5)
  axis.xaxis.set_major_formatter('{x:+.4f}')
  axis.set_yticks([])
  axis.set_title(f'candidate \N{MINUS SIGN} serving: {change.verdict}', fontsize=10)
  axis.legend(fontsize=8, loc='upper left')


def metrics(candidate: dict, serving: dict) -> str | None:
  """Each metric, candidate and serving, on its own zoomed axis."""
  plotted = [n for n, v in candidate.items() if n != 'example_count' and isinstance(v, float)]
  if not plotted:
    return None
  figure, axes = _subplots(1, len(plotted), figsize=(1.9 * len(plotted), 2.4), squeeze=False)
  for axis, name in zip(axes[0], plotted, strict=True):
    pair = [candidate[name], serving.get(name)]
    shown = 1 + (pair[1] is not None)
    axis.scatter(
      ['cand.', 'serv.'][:shown],
      [v for v in pair if v is not None],
      color=[CANDIDATE, SERVING][:shown],
      s=40,
      zorder=3,
    )
    _zoom(axis, pair)
    axis.set_xlim(-0.6, 1.6)
    axis.set_title(name, fontsize=10)
    axis.tick_params(labelsize=8)
  return _png(figure)


def slices(names: list[str], candidate: list, serving: list, metric: str) -> str:
  """The metric per slice for both models, and their differences as bars around 0."""
  figure, (top, bottom) = _subplots(
    2, 1, figsize=(max(6, 0.4 * len(names)), 4.2), sharex=True, height_ratios=[2, 1]
  )
  positions = list(range(len(names)))
  top.plot(positions, candidate, 'o', color=CANDIDATE, label='candidate')
  if any(v is not None for v in serving):
    top.plot(
      positions,
      [v if v is not None else float('nan') for v in serving],
      'o',
      markerfacecolor='none',
      color=SERVING,
      label='serving',
    )
    deltas = [
      c - s if c is not None and s is not None else 0.0
      for c, s in zip(candidate, serving, strict=True)
    ]
    bottom.bar(positions, deltas, color=[PUSHED if d >= 0 else THRESHOLD for d in deltas])
  bottom.axhline(0, color=SERVING, linewidth=0.8)
  bottom.set_ylabel('difference', fontsize=8)
  _zoom(top, candidate + serving)
  top.set_ylabel(metric)
  top.legend(fontsize=8)
  bottom.set_xticks(positions)
  bottom.set_xticklabels(
    [n.split('=', 1)[-1] for n in names], fontsize=8, rotation=90 if len(names) > 30 else 0
  )
  bottom.set_xlabel(names[0].split('=', 1)[0])
  return _png(figure)


def calibration(curves: dict[str, list[tuple[float, float, float]]]) -> str:
  """Each model's fraction of positives against its mean prediction, per bin."""
  figure, axis = _subplots(figsize=(4.2, 4))
  axis.plot([0, 1], [0, 1], color='#cccccc', linestyle='--', label='perfectly calibrated')
  for name, color, marker in (('candidate', CANDIDATE, 'o'), ('serving', SERVING, 's')):
    points = curves.get(name)
    if points:
      axis.plot(
        [p[0] for p in points], [p[1] for p in points], marker=marker, color=color, label=name
      )
  axis.set_xlabel('mean prediction')
  axis.set_ylabel('fraction of positives')
  axis.legend(fontsize=8)
  return _png(figure)


def loss(train: list[tuple[int, float]], evaluation: list[tuple[int, float]]) -> str:
  """The training loss by step, and the eval loss where it was measured."""
  figure, axis = _subplots(figsize=(6, 2.8))
  axis.plot([s for s, _ in train], [v for _, v in train], color=CANDIDATE, label='training loss')
  if evaluation:
    axis.plot(
      [s for s, _ in evaluation],
      [v for _, v in evaluation],
      'o',
      color=THRESHOLD,
      label='eval loss',
    )
  axis.set_xlabel('step')
  axis.set_ylabel('loss')
  axis.legend(fontsize=8)
  return _png(figure)


def trend(timeline: list, metric: str, threshold: float) -> str | None:
  """The gated metric of every evaluated run by run id, the serving model's
  at that time, the threshold, pushes and rollbacks."""
  evaluated = [r for r in timeline if r.kind != 'rollback']
  if not evaluated:
    return None
  figure, axis = _subplots(figsize=(max(6, 0.55 * len(timeline)), 3.2))
  xs = {r.run_id: i for i, r in enumerate(timeline)}
  points = [(xs[r.run_id], r.gate.candidate) for r in evaluated]
  axis.plot(*zip(*points, strict=True), color=CANDIDATE, marker='o', label='candidate')
  serving = [(xs[r.run_id], r.gate.serving) for r in evaluated if r.gate.serving is not None]
  if serving:
    axis.step(*zip(*serving, strict=True), where='mid', color=SERVING, label='serving then')
  pushed = [(xs[r.run_id], r.gate.candidate) for r in evaluated if r.pushed_version]
  if pushed:
    axis.plot(
      *zip(*pushed, strict=True),
      'o',
      markersize=11,
      markerfacecolor='none',
      color=PUSHED,
      label='pushed',
    )
  rollbacks = [xs[r.run_id] for r in timeline if r.kind == 'rollback']
  for i, x in enumerate(rollbacks):
    axis.axvline(x, color='#9467bd', linestyle='--', label='rollback' if i == 0 else None)
  axis.axhline(threshold, color=THRESHOLD, linestyle=':', label='threshold')
  _zoom(axis, [v for _, v in points] + [v for _, v in serving] + [threshold])
  axis.set_xticks(list(xs.values()))
  axis.set_xticklabels(
    [r.run_id[4:13].replace('T', ' ') for r in timeline], rotation=45, ha='right', fontsize=7
  )
  axis.set_xlabel('run (month-day, hour-minute)')
  axis.set_ylabel(metric)
  axis.legend(fontsize=7, loc='best')
  return _png(figure)
