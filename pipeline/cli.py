"""Command line: `python -m pipeline COMMAND [--config FILE] [--set key=value ...]`."""

import argparse
import contextlib
import datetime
import json
import logging
import os
import pathlib
import secrets
import shutil
import sys
import threading
import time

from components.contract import MISSING_VALUES
from components.csv_check import DataError
from pipeline import history, kubeflow, runlock, scaffold, unchanged
from pipeline.config import ConfigError, load_config, to_dict
from pipeline.outcomes import (
  EXIT_CODES_HELP,
  EXIT_FAILED,
  EXIT_LOCKED,
  EXIT_USAGE,
  NEXT_STEP,
  OUTCOME_TEXT,
  OUTCOMES,
)

TASKS = ('binary', 'multiclass', 'regression')

# The console's line for the pre-run checks (config, data files, the user's
# module, which imports TensorFlow: the longest silence otherwise).
CHECKS = 'checks'
# A component's "running" line appears once it has run this long.
RUNNING_AFTER_S = 1.0


def _parser():
  parser = argparse.ArgumentParser(
    prog='python -m pipeline',
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
    epilog=EXIT_CODES_HELP,
  )
  commands = parser.add_subparsers(dest='command', required=True)
  init = commands.add_parser(
    'init', help='write a runnable starting project (config, schema, model package) for a CSV table'
  )
  init.add_argument('directory', type=pathlib.Path, help='the project folder to create')
  init.add_argument(
    '--data',
    type=pathlib.Path,
    required=True,
    help='a CSV file, or a folder of CSV files with one header',
  )
  init.add_argument('--label', required=True, help='the column to predict')
  init.add_argument(
    '--task',
    choices=TASKS,
    required=True,
    help='binary or multiclass classification, or regression',
  )
  init.add_argument(
    '--missing-values',
    type=lambda text: tuple(t.strip() for t in text.split(',') if t.strip()),
    default=MISSING_VALUES,
    metavar='TOKENS',
    help='comma-separated cells that mean a missing number (default: %(default)s; '
    'an empty cell always does); written to pipeline.yaml as missing_values',
  )
  init.add_argument(
    '--model',
    choices=scaffold.MODELS,
    default='custom',
    help="custom: the package's own wide-and-deep model_fn (default); linear, dnn, "
    "wide_deep: TF's canned Estimators (TF 2.15 has no boosted trees)",
  )
  init.add_argument('--force', action='store_true', help='overwrite an existing project folder')
  for name, help_text in (
    ('run', 'run the whole pipeline on this machine'),
    ('runs', 'list past runs, newest first (show ID, compare A B)'),
    ('models', 'list the versions in the serving directory'),
    ('tensorboard', "serve every run's training curves, named by run id"),
    ('rollback', 'make an earlier model version serve again'),
    ('predict', "a served model's predictions for the rows of a CSV file"),
    ('schema', 'regenerate the curated schema from the data'),
    ('image', 'build the pipeline image (locked versions and your module)'),
    ('compile', 'write the pipeline for Kubeflow Pipelines'),
    ('submit', 'upload to Kubeflow Pipelines and start a (recurring) run'),
    ('manifests', 'write the Kubernetes objects the pipeline needs (PVC, RBAC)'),
  ):
    command = commands.add_parser(
      name,
      help=help_text,
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=EXIT_CODES_HELP if name == 'run' else None,
    )
    command.add_argument(
      '--config', type=pathlib.Path, help='YAML config (default: the shipped one)'
    )
    command.add_argument(
      '--set',
      action='append',
      default=[],
      metavar='KEY=VALUE',
      help='override a config key; repeatable',
    )
    if name == 'schema':
      command.add_argument(
        '--output',
        type=pathlib.Path,
        help="where to write the schema (default: the config's schema_file)",
      )
      command.add_argument('--force', action='store_true', help='overwrite an existing schema file')
    if name == 'runs':
      command.add_argument('action', nargs='?', choices=('list', 'show', 'compare'), default='list')
      command.add_argument(
        'ids',
        nargs='*',
        metavar='RUN_ID',
        help='show: one run; compare: two runs (a unique prefix will do)',
      )
      command.add_argument('--json', action='store_true', help='show: the whole run record')
    if name == 'rollback':
      command.add_argument(
        'version',
        nargs='?',
        type=int,
        help='the version to serve (default: the one before the serving one)',
      )
    if name == 'predict':
      command.add_argument('data', type=pathlib.Path, help='a CSV file with the raw columns')
      command.add_argument('--model', help='a SavedModel folder (default: the version now serving)')
      command.add_argument(
        '--output', type=pathlib.Path, help='write the predictions here (default: stdout)'
      )
    if name == 'tensorboard':
      command.add_argument('--host', default='localhost', help='default: localhost')
      command.add_argument('--port', type=int, default=6006, help='default: 6006')
    if name == 'image':
      command.add_argument('--tag', required=True, help='the image name, e.g. registry/name:tag')
      command.add_argument('--dry-run', action='store_true', help='print the docker command only')
    if name == 'run':
      command.add_argument(
        '--runner',
        choices=('local', 'beam'),
        default='local',
        help="TFX's LocalDagRunner (default) or BeamDagRunner",
      )
      command.add_argument(
        '--accept-drift',
        action='store_true',
        help='train on the newest span even if it drifted from the previous '
        'one (same as --set drift.accept=true); remembered for these spans',
      )
      command.add_argument(
        '--replace-serving',
        metavar='REASON',
        help='push the new model even if it scores worse than the serving one '
        '(the threshold still holds); REASON is kept in the run history',
      )
    if name in ('compile', 'submit'):
      command.add_argument(
        '--target',
        choices=kubeflow.TARGETS,
        default='kubeflow',
        help='kubeflow: Argo workflow for KFP 1.8 and 2.x backends (default); '
        'kubeflow-v2: KFP v2 pipeline spec (KFP v2, Vertex)',
      )
      command.add_argument(
        '--output',
        type=pathlib.Path,
        help='the YAML file (default: <output_root>/kubeflow/pipeline-v1.yaml or -v2.yaml)',
      )
    if name == 'manifests':
      command.add_argument(
        '--output',
        type=pathlib.Path,
        help='the YAML file (default: <output_root>/kubeflow/cluster.yaml)',
      )
    if name == 'submit':
      command.add_argument(
        '--host', help='KFP API endpoint, e.g. http://localhost:8080 (default: kubeflow.host)'
      )
      command.add_argument(
        '--schedule',
        metavar='CRON',
        help='create a recurring run on this cron schedule instead of one run',
      )
      command.add_argument('--experiment', default='Default', help='KFP experiment name')
      command.add_argument(
        '--namespace',
        help='multi-user KFP: your profile namespace (default: kubeflow.user_namespace)',
      )
      command.add_argument(
        '--pipeline-root',
        metavar='URI',
        help='kubeflow-v2: gs:// or s3:// root for artifacts (default: kubeflow.v2_pipeline_root)',
      )
  return parser


@contextlib.contextmanager
def _logs_to(path: pathlib.Path):
  """Sends everything written to stderr (Python, absl, TF's C++ logs) to `path`.

  Yields a writable stream to the original stderr, for our own errors.
  """
  path.parent.mkdir(parents=True, exist_ok=True)
  sys.stderr.flush()
  saved = os.dup(2)
  with (
    open(path, 'a', buffering=1) as log,
    os.fdopen(os.dup(saved), 'w', buffering=1) as console_err,
  ):
    os.dup2(log.fileno(), 2)
    try:
      yield console_err
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)


def _describe(error: BaseException) -> str:
  text = str(error).strip() or error.__class__.__name__
  return (
    text
    if isinstance(error, (ValueError, RuntimeError, OSError))
    else (f'{error.__class__.__name__}: {text}')
  )


# The summary and the console keep this much of an error; the log has all of it.
MAX_ERROR_LINES, MAX_ERROR_CHARS = 16, 2000


def short(text: str) -> str:
  """`text` cut to MAX_ERROR_LINES lines and MAX_ERROR_CHARS characters."""
  lines = text.splitlines()
  if len(lines) > MAX_ERROR_LINES:
    lines = [*lines[:1], '...', *lines[-(MAX_ERROR_LINES - 2) :]]
  text = '\n'.join(lines)
  return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 4] + ' ...'


def _wrapped(error: BaseException) -> BaseException | None:
  """The error `error` was raised from, or during; none after `raise ... from None`."""
  if error.__cause__ is not None:
    return error.__cause__
  return None if error.__suppress_context__ else error.__context__


def error_text(error: BaseException) -> str:
  """What went wrong, for a person: the error's own message, or, when it wraps
  another (Beam and TFMA re-raise with their own context, e.g. TFMA's
  `add_input failed on "<...Combiner object at 0x...>"`), the root cause's."""
  if isinstance(error, KeyboardInterrupt):
    return 'interrupted'
  root, seen = error, {id(error)}
  while (below := _wrapped(root)) is not None and id(below) not in seen:
    root = below
    seen.add(id(root))
  if root is error:
    return _describe(error)
  root_text = f'{root.__class__.__name__}: {str(root).strip()}'
  return f'{root_text} (raised as: {_describe(error).splitlines()[0][:200]})'


def run(config, console_err, runner: str = 'local') -> dict:
  """Runs the pipeline for `config`, printing progress; returns the summary.

  Raises:
    LockedError: another run holds this output root or serving directory.
    ConfigError: the config does not fit the schema or the module (nothing ran).
  """
  run_id = datetime.datetime.now().strftime('%Y%m%dT%H%M%S-') + secrets.token_hex(2)
  locked = {'output root': config.output_root, 'serving directory': pathlib.Path(config.push_dir)}
  with runlock.hold(run_id, locked, config.run_lock_wait_s):
    return _run_locked(config, run_id, console_err, runner)


def _run_locked(config, run_id, console_err, runner) -> dict:
  run_dir = config.runs_dir / run_id
  log_file = run_dir / 'pipeline.log'
  started = time.monotonic()
  status, error, refused = 'succeeded', None, False
  print(f'run {run_id} ({runner} runner): logs in {log_file}', flush=True)

  running = {}

  def on_start(name):
    # Said only if it takes a while: a cached component is one line.
    line = f'  {name:<26} {"running":<9} {"":7}     (elapsed {time.monotonic() - started:6.1f} s)'
    running[name] = threading.Timer(RUNNING_AFTER_S, print, [line], {'flush': True})
    running[name].daemon = True
    running[name].start()

  def on_finish(name, state, seconds):
    if name in running:
      running.pop(name).cancel()
    print(
      f'  {name:<26} {state:<9} {seconds:7.1f} s   (elapsed {time.monotonic() - started:6.1f} s)',
      flush=True,
    )

  def on_training(line):
    print(f'    {line}', flush=True)

  previous = unchanged.last_if_unchanged(config, runner, history.load_runs(config))
  if previous is not None:
    return _answer_unchanged(config, run_id, runner, previous, started, on_finish, console_err)

  inputs = None
  with _logs_to(log_file) as console:
    from components import serving
    from pipeline import checks, store

    on_start(CHECKS)
    checks_started = time.monotonic()
    # A damaged metadata store, records that died with their process, and
    # damaged serving versions, before anything relies on them.
    note = store.set_aside_if_damaged(config.metadata_path, config.pipeline_root, run_id)
    if note:
      print(f'note: {note}', flush=True)
    for note in history.recover(config, run_id):
      print(f'note: {note}', flush=True)
    damaged = [
      {'version': v, 'path': os.path.join(config.push_dir, str(v)), 'moved_to': to, 'problem': why}
      for v, to, why in serving.set_aside(config.push_dir)
    ]
    for version in damaged:
      print(
        f'warning: serving version {version["version"]} at {version["path"]} is damaged '
        f'({version["problem"]}); moved aside to {version["moved_to"]}',
        file=console,
        flush=True,
      )
    staged = serving.remove_staging(config.push_dir)
    if staged:
      print(f'note: {len(staged)} half-copied version(s) of a killed push removed', flush=True)
    progress = None
    try:
      # Fail fast, before any component runs. The user's module imports
      # TensorFlow: its start-up messages go to the log file.
      try:
        checks.preflight(config)
      except BaseException:
        on_finish(CHECKS, 'failed', time.monotonic() - checks_started)
        raise
      on_finish(CHECKS, 'passed', time.monotonic() - checks_started)
    except ConfigError:
      logging.getLogger(__name__).exception('run %s refused', run_id)
      shutil.rmtree(run_dir, ignore_errors=True)
      raise  # a mistake in the config or the module: nothing ran
    except (Exception, KeyboardInterrupt) as e:
      status, error, refused = 'failed', error_text(e), isinstance(e, DataError)
    if status != 'failed':
      from pipeline import usercode

      inputs = unchanged.started(config, runner, usercode.source_files(config.module))
      history.start(config, run_id, runner, log_file)
      try:
        from absl import logging as absl_logging

        from pipeline import cache_check, runners

        for note in cache_check.invalidate_incomplete(config.metadata_path, config.file_lists_dir):
          print(f'note: {note}', flush=True)
        absl_logging.set_verbosity(absl_logging.INFO)
        progress = runners.ComponentProgress(on_finish, on_start)
        training = runners.TrainingProgress(config.trainer.train_steps, on_training)
        runners.run(config, run_id, progress, runner, training)
      except (Exception, KeyboardInterrupt) as e:  # reported in the summary, not re-raised
        status, error = 'failed', short(error_text(e))
        refused = isinstance(e, DataError)
        failed = [
          name
          for name, (state, _) in (progress.timings if progress else {}).items()
          if state == 'failed'
        ]
        if failed:
          error = f'{failed[0]} failed: {error}'
        logging.getLogger(__name__).exception('run %s failed', run_id)
      try:
        # What this run made (even if it failed later) is whole: recorded so
        # the next run can tell if it is still.
        cache_check.record_file_lists(config.metadata_path, config.file_lists_dir)
      except Exception:  # a cache left unrecorded is checked by its type instead
        logging.getLogger(__name__).exception('run %s: file lists not recorded', run_id)
    from pipeline import report

    collected = report.collect(config, run_id, progress.timings if progress else {})
    summary = {
      'run_id': run_id,
      'status': status,
      'outcome': outcome(status, collected, refused),
      'error': error,
      **collected,
      'damaged_versions': damaged,
      'runner': runner,
      'wall_seconds': round(time.monotonic() - started, 2),
      'log_file': str(log_file),
      'config': to_dict(config),
    }
    if inputs and status == 'succeeded' and summary['outcome'] in unchanged.DECIDED:
      summary['inputs'] = {**inputs, **unchanged.ended(config)}
    from pipeline import html_report

    try:
      summary['report'] = str(html_report.write(summary, config, history.load_runs(config)))
    except Exception:  # a report that cannot be drawn must not change the run's outcome
      logging.getLogger(__name__).exception('run %s: the report could not be written', run_id)
      summary['report'] = None
  path = history.write_summary(config, summary)
  _print_summary(summary, path, console_err)
  return summary


def _answer_unchanged(config, run_id, runner, previous, started, on_finish, console_err) -> dict:
  """A run with nothing new since run `previous`, answered from its record (see `unchanged`)."""
  from pipeline import html_report

  note = (
    f'nothing changed since run {previous["run_id"]} (data, code, config, schema, installed '
    'stack, serving models): every component is cached'
  )
  print(f'note: {note}', flush=True)
  summary = unchanged.answer(previous, run_id)
  for component in summary['components']:
    on_finish(component['name'], component['state'], component['seconds'])
  run_dir = config.runs_dir / run_id
  run_dir.mkdir(parents=True, exist_ok=True)
  log_file = run_dir / 'pipeline.log'
  log_file.write_text(f'run {run_id}: {note}; answered from its record, nothing ran.\n')
  summary.update(runner=runner, log_file=str(log_file), config=to_dict(config))
  try:
    summary['report'] = str(html_report.write(summary, config, history.load_runs(config)))
  except Exception:  # a report that cannot be drawn must not change the run's outcome
    logging.getLogger(__name__).exception('run %s: the report could not be written', run_id)
    summary['report'] = None
  summary['wall_seconds'] = round(time.monotonic() - started, 2)
  path = history.write_summary(config, summary)
  _print_summary(summary, path, console_err)
  return summary


def outcome(status: str, collected: dict, refused: bool = False) -> str:
  """What the run did, one of OUTCOMES, from its status and `report.collect`'s
  summary; `refused`: a DataError (a malformed CSV file) stopped it."""
  from pipeline.report import EXECUTED, FAILED

  states = {c['name']: c['state'] for c in collected['components']}
  if status != 'succeeded':
    return 'data_refused' if refused or states.get('ExampleValidator') == FAILED else 'failed'
  if collected['pushed_path']:
    return 'pushed'
  # A new evaluation (of a new model, or of a cached one under a changed
  # gate) that pushed nothing kept the serving model: a decision, not a no-op.
  decided = EXECUTED in (states.get('Trainer'), states.get('Evaluator'))
  return 'not_pushed' if decided else 'nothing_new'


def _print_summary(summary, path, console_err):
  sys.stdout.flush()
  if summary['status'] == 'failed':
    first, *rest = summary['error'].splitlines() or ['']
    print(f'error: {first}', file=console_err)
    for line in rest:
      print(f'  {line}', file=console_err)
    print(f'  (the whole log: {summary["log_file"]})', file=console_err)
  metrics = summary['metrics']
  cached = summary.get('outcome') == 'nothing_new'
  if metrics:
    shown = ', '.join(
      f'{k} {v:.4f}' if isinstance(v, float) else f'{k} {v}' for k, v in metrics.items()
    )
    # A fully cached run's evaluation is an earlier run's, against the model
    # that served then: shown as such, with no decision of its own.
    print(f'eval metrics{" (cached, from an earlier run)" if cached else ""}: {shown}')
  training = summary.get('training') or {}
  trained = any(
    c['name'] == 'Trainer' and c['state'] == 'executed' for c in summary.get('components') or []
  )
  if trained and training.get('warm_start'):
    print(f'trained: {training["warm_start"]}')  # warm-started from which version, or why not
  gate = summary.get('gate')
  if gate and gate.get('candidate') is not None and not cached:
    serving = f'{gate["serving"]:.4f}' if gate.get('serving') is not None else 'no model serving'
    print(f'gate: {gate["metric"]} {gate["candidate"]:.4f} (serving: {serving})')
  if summary.get('blessing_reason') and not cached:
    print(f'blessed: {"yes" if summary["blessed"] else "no"} ({summary["blessing_reason"]})')
  if summary['pushed_path']:
    print(f'pushed: {summary["pushed_path"]}')
  elif summary.get('not_pushed_reason'):
    print(f'pushed: nothing ({summary["not_pushed_reason"]})')
  else:
    print('pushed: nothing')
  if summary.get('serving_path'):
    print(f'serving: {summary["serving_path"]}')
  if summary.get('report'):
    print(f'report: {summary["report"]}')
  print(
    f'{summary["status"]} in {summary["wall_seconds"]:.1f} s: {OUTCOME_TEXT[summary["outcome"]]} '
    f'(exit {OUTCOMES[summary["outcome"]]}); summary: {path}',
    flush=True,
  )
  if summary['outcome'] in NEXT_STEP:
    print(f'next: {NEXT_STEP[summary["outcome"]]}', flush=True)


def _compile(config, args) -> pathlib.Path:
  from pipeline import checks

  checks.preflight(config, data=False)
  output = kubeflow.compile_pipeline(
    config, args.target, args.output or kubeflow.default_output(config, args.target)
  )
  print(f'wrote {output} ({args.target})')
  return output


def _manifests(config, args):
  from pipeline import manifests

  output = manifests.write_manifests(
    config, args.output or config.output_root / 'kubeflow' / 'cluster.yaml'
  )
  print(f'wrote {output}; apply it with: kubectl apply -f {output}')


def _submit(config, args):
  host = kubeflow.kfp_host(config, args.host)
  if args.target == 'kubeflow-v2':  # before compiling: a missing root is a usage error
    kubeflow.check_v2_pipeline_root(
      args.pipeline_root or config.kubeflow.v2_pipeline_root, config.trainer.cluster
    )
  if args.schedule:
    kubeflow.kfp_cron(args.schedule)
  package = _compile(config, args)
  ids = kubeflow.submit(
    config,
    args.target,
    package,
    host,
    args.schedule,
    args.experiment,
    args.namespace,
    args.pipeline_root,
  )
  what = (
    f'recurring run on "{args.schedule}" (KFP cron "{kubeflow.kfp_cron(args.schedule)}")'
    if args.schedule
    else 'run'
  )
  print(f'submitted to {host}: {what}; ' + ', '.join(f'{k} {v}' for k, v in ids.items()))


def _image(config, args):
  from pipeline import image

  command = image.build(config, args.tag, dry_run=args.dry_run)
  print(('would run: ' if args.dry_run else 'built with: ') + ' '.join(command))
  settings = [f'kubeflow.image={args.tag}']
  schema = image.image_schema_file(config)
  if schema:
    settings.append(f'kubeflow.schema_file={schema}')
  print('then compile or submit with: ' + ' '.join(f'--set {s}' for s in settings))


def _schema(config, args):
  from components.example_gen import check_spans
  from pipeline import schema

  output = args.output or pathlib.Path(config.schema_file)
  if output.exists() and not args.force:
    raise FileExistsError(f'{output} exists; pass --force to overwrite it, or --output FILE')
  newest = check_spans(config.data_root, config.spans.pattern, 1).newest
  files = os.path.join(config.data_root, newest.pattern)
  stats = schema.statistics(files, config.missing_values)
  schema.write(schema.infer(stats, config.task.label), output)
  print(f'wrote {output}; review the diff before committing it')


def _predict(config, args) -> int:
  # Loading the model imports TensorFlow: its chatter goes to a log.
  with _logs_to(config.output_root / 'logs' / 'predict.log') as err:
    from components import serving
    from pipeline import predict

    model = args.model
    if not model:
      pushed = serving.latest(config.push_dir)
      if pushed is None:
        print(f'error: no model serves in {config.push_dir}; pass --model DIR', file=err)
        return EXIT_USAGE
      model = pushed.path
    try:
      written, absent = predict.main(config, model, args.data, args.output)
    except BrokenPipeError:
      # The reader (`| head`) has what it wanted; Python must not flush into the closed pipe.
      os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
      return 0
    except (OSError, ValueError) as e:
      print(f'error: {error_text(e)}', file=err)
      return EXIT_USAGE
    if absent:
      print(f'note: no column {", ".join(map(repr, absent))}: missing in every row', file=err)
    if args.output:
      print(f'wrote {written} predictions of {model} to {args.output}', file=err)
  return 0


def _init(args) -> int:
  import tempfile

  fd, log = tempfile.mkstemp(prefix='pipeline-init-', suffix='.log')
  os.close(fd)
  # TFDV's schema inference runs Beam and TF: their chatter goes to a
  # temporary log, kept only if init fails in an unexpected way.
  with _logs_to(pathlib.Path(log)) as err:
    decided = {}
    try:
      written = scaffold.init(
        args.directory,
        args.data,
        args.label,
        args.task,
        force=args.force,
        decided=decided,
        missing_values=args.missing_values,
        model=args.model,
      )
    except (OSError, ValueError) as e:
      print(f'error: {error_text(e)}', file=err)
      os.unlink(log)
      return EXIT_USAGE
  os.unlink(log)
  config = written / scaffold.CONFIG_FILE
  for name, decision in decided.items():
    print(f'{name!r}: {decision}')
  print(
    f'wrote {written}: {scaffold.CONFIG_FILE}, {scaffold.SCHEMA_FILE} and the package '
    f'{scaffold.package_name(written)}/'
  )
  print(f'review the schema and the model, then run: python -m pipeline run --config {config}')
  return 0


def main(argv=None) -> int:
  args = _parser().parse_args(argv)
  if args.command == 'init':
    return _init(args)
  overrides = list(args.set)
  if getattr(args, 'accept_drift', False):
    overrides.append('drift.accept=true')
  if getattr(args, 'replace_serving', None) is not None:
    if not args.replace_serving.strip():
      print('error: --replace-serving needs a reason', file=sys.stderr)
      return EXIT_USAGE
    # JSON is YAML: the reason stays one string whatever it holds.
    overrides.append(f'evaluator.replace_serving={json.dumps(args.replace_serving.strip())}')
  try:
    config = load_config(args.config, overrides)
  except ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_USAGE
  if args.command in ('runs', 'models', 'rollback'):
    # Reading SavedModels imports TensorFlow: its start-up chatter goes to a log.
    with _logs_to(config.output_root / 'logs' / f'{args.command}.log') as err:
      from pipeline import catalog

      try:
        return catalog.main(config, args)
      except runlock.LockedError as e:
        print(f'error: {e}', file=err)
        return EXIT_LOCKED
      except (ValueError, OSError) as e:
        print(f'error: {error_text(e)}', file=err)
        return EXIT_USAGE if isinstance(e, ValueError) else EXIT_FAILED
  if args.command == 'predict':
    return _predict(config, args)
  if args.command == 'tensorboard':
    from pipeline import tensorboard

    tensorboard.serve(config, args.host, args.port)
  if args.command in ('schema', 'compile', 'submit', 'image', 'manifests'):
    command = {
      'schema': _schema,
      'compile': _compile,
      'submit': _submit,
      'image': _image,
      'manifests': _manifests,
    }[args.command]
    log = config.output_root / 'kubeflow' / f'{args.command}.log'
    # TF's and TFX's start-up chatter goes to a log; our lines and errors to the console.
    quiet = args.command in ('compile', 'submit')
    with _logs_to(log) if quiet else contextlib.nullcontext(sys.stderr) as err:
      try:
        command(config, args)
      except (OSError, ValueError, RuntimeError) as e:
        print(f'error: {error_text(e)}', file=err)
        return EXIT_USAGE if isinstance(e, ConfigError) else EXIT_FAILED
    return 0
  try:
    summary = run(config, sys.stderr, args.runner)
  except ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_USAGE
  except runlock.LockedError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_LOCKED
  return OUTCOMES[summary['outcome']]
