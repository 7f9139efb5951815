"""`python -m pipeline runs | models | rollback`: what ran, what serves, and going back."""

import datetime
import json
import logging

from pipeline.config import Config
from pipeline.record import Outcome, RunSummary
from pipeline.service import history
from pipeline.views import models


def _value(value) -> str:
  return f'{value:.4f}' if isinstance(value, float) else '-' if value is None else str(value)


def runs_table(records: list[RunSummary]) -> list[str]:
  """One line per run, under 80 columns: id (its start time), outcome, gated
  metric, blessed, pushed version, seconds."""
  header = (
    f'{"run":<21} {"outcome":<12} {"metric":<16} {"blessed":<7} {"pushed":<11} {"seconds":>7}'
  )
  lines = [header]
  for r in records:
    gate = r.gate
    metric = f'{gate.metric} {_value(gate.candidate)}' if gate else '-'
    if r.kind == 'rollback':
      metric = f'to {r.rolled_back_to}'
    outcome = r.outcome.value if r.outcome else r.status
    # A cached run's evaluation is an earlier run's: not a decision of its own.
    evaluated = r.kind != 'rollback' and r.outcome in (Outcome.PUSHED, Outcome.NOT_PUSHED)
    blessed = ('yes' if r.blessed else 'no') if evaluated else '-'
    seconds = r.wall_seconds
    lines.append(
      f'{r.run_id:<21} {outcome:<12} {metric:<16} {blessed:<7} '
      f'{_value(r.pushed_version):<11} {"-" if seconds is None else f"{seconds:.1f}":>7}'
    )
  return lines


def _seconds(value) -> str:
  return f'{value:.1f} s' if isinstance(value, float | int) else '-'


def show(r: RunSummary) -> list[str]:
  """A run record as a person reads it: what happened, what decided it, where to look."""
  took = f', {_seconds(r.wall_seconds)}' if r.wall_seconds is not None else ''
  outcome = r.outcome.value if r.outcome else r.status
  lines = [f'run {r.run_id}: {outcome} ({r.runner or "?"} runner{took})']
  if r.error:
    lines.append(f'error: {r.error}')
  lines += [f'  {c.name:<18} {c.state:<9} {_seconds(c.seconds)}' for c in r.components]
  if r.spans:
    lines.append(f'spans: trained on {r.spans.train}, evaluated on {r.spans.eval}')
  if r.training and (r.training.warm_start_version or r.training.warm_start):
    lines.append(f'warm start: {r.training.warm_start_version or r.training.warm_start}')
  if r.metrics:
    lines.append('metrics: ' + ', '.join(f'{k} {_value(v)}' for k, v in r.metrics.items()))
  if r.gate:
    lines.append(
      f'gate: {r.gate.metric} {_value(r.gate.candidate)} (serving: '
      f'{_value(r.gate.serving)}, threshold {_value(r.gate.threshold)})'
    )
  if r.blessing_reason:
    lines.append(f'blessed: {"yes" if r.blessed else "no"} ({r.blessing_reason})')
  if r.pushed_path or r.not_pushed_reason:
    lines.append(f'pushed: {r.pushed_path or r.not_pushed_reason}')
  lines += [f'damaged version {v.version}: {v.problem}' for v in r.damaged_versions]
  lines += [
    f'{name}: {value}' for name, value in (('report', r.report), ('log file', r.log_file)) if value
  ]
  return [*lines, '(the whole record: runs show --json)']


def _flatten(value, prefix='') -> dict:
  if isinstance(value, dict):
    flat = {}
    for key, item in value.items():
      flat.update(_flatten(item, f'{prefix}{key}.'))
    return flat
  return {prefix.rstrip('.'): value}


def compare(a: RunSummary, b: RunSummary) -> list[str]:
  """The metrics of two runs side by side, and the config keys that differ."""
  lines = [f'{"":<24} {a.run_id:<21} {b.run_id}']
  plain_a, plain_b = a.plain(), b.plain()
  lines += [
    f'{key:<24} {_value(plain_a[key]):<21} {_value(plain_b[key])}'
    for key in ('outcome', 'blessed', 'pushed_version', 'wall_seconds')
  ]
  metrics_a, metrics_b = a.metrics, b.metrics
  lines += [
    f'{"metrics." + name:<24} {_value(metrics_a.get(name)):<21} {_value(metrics_b.get(name))}'
    for name in [*metrics_a, *[n for n in metrics_b if n not in metrics_a]]
  ]
  config_a, config_b = _flatten(a.config or {}), _flatten(b.config or {})
  changed = sorted(k for k in set(config_a) | set(config_b) if config_a.get(k) != config_b.get(k))
  lines.append('config: ' + ('the same' if not changed else f'{len(changed)} key(s) differ'))
  lines += [
    f'  {k}: {json.dumps(config_a.get(k))} -> {json.dumps(config_b.get(k))}' for k in changed
  ]
  return lines


def models_table(rows: list[dict]) -> list[str]:
  """One line per version (pushed when its run started, unless a rollback),
  its notes after the columns, or on a line of their own past 80 columns."""
  lines = [f'{"version":<11} {"pushed":<16} {"run":<20} {"metric":<14} {"spans":<6} note']
  for row in rows:
    pushed = (
      datetime.datetime.fromtimestamp(row['pushed_at']).strftime('%Y-%m-%d %H:%M')
      if row['pushed_at']
      else '?'
    )
    metric = f'{row["metric"]} {_value(row["value"])}' if row['metric'] else '-'
    spans = row['spans'] or {}
    span_text = ','.join(map(str, spans.get('train', []))) if spans else '-'
    notes = (
      (['SERVING'] if row['serving'] else [])
      + ([f'copy of {row[models.ROLLBACK_OF]} (rollback)'] if row[models.ROLLBACK_OF] else [])
      + ([f'DAMAGED: {row["damaged"]}'] if row['damaged'] else [])
    )
    line = (
      f'{row["version"]:<11} {pushed:<16} {row["run_id"] or "?":<20} {metric:<14} '
      f'{span_text:<6} {"; ".join(notes)}'
    ).rstrip()
    if len(line) > 80:
      line = line[: -len('; '.join(notes))].rstrip() + '\n  ' + '; '.join(notes)
    lines.append(line)
  return lines


def main(config: Config, args) -> int:
  """Runs `runs`, `models` or `rollback` for the CLI; returns the exit code."""
  if args.command == 'runs':
    if args.action == 'list':
      records = history.load_runs(config)
      print('\n'.join(runs_table(records)) if records else f'no runs in {config.runs_dir}')
    elif args.action == 'show':
      if len(args.ids) != 1:
        raise ValueError('runs show takes one run id')
      record = history.load_run(config, args.ids[0])
      print(record.to_json() if args.json else '\n'.join(show(record)))
    else:
      if len(args.ids) != 2:
        raise ValueError('runs compare takes two run ids')
      print('\n'.join(compare(*(history.load_run(config, i) for i in args.ids))))
    return 0
  if args.command == 'models':
    rows = models.list_models(config)
    print('\n'.join(models_table(rows)) if rows else f'no models in {config.push_dir}')
    return 0
  record = models.rollback(config, args.version)
  print(
    f'rolled back: version {record.rolled_back_to} serves again, as version '
    f'{record.pushed_version} ({record.pushed_path}); it replaced version '
    f'{record.replaced_version}. The next run compares against it.'
  )
  from pipeline.views import html_report

  try:
    print(f'runs: {html_report.write_index(config, history.load_runs(config))}')
  except Exception:  # the index is a view: a rollback done stays done
    logging.getLogger(__name__).exception('the index of runs could not be written')
  return 0
