"""Command line: `python -m pipeline COMMAND [--config FILE] [--set key=value ...]`."""

import argparse
import contextlib
import json
import os
import pathlib
import sys

from components.contract import MISSING_VALUES
from pipeline.config import ConfigError, load_config
from pipeline.console import error_text, logs_to
from pipeline.definition import kubeflow
from pipeline.record import EXIT_CODES_HELP, EXIT_FAILED, EXIT_LOCKED, EXIT_USAGE, Outcome
from pipeline.scaffold import init as scaffold
from pipeline.service import lifecycle, runlock

TASKS = ('binary', 'multiclass', 'regression')


def _schema_options(command):
  command.add_argument(
    '--output',
    type=pathlib.Path,
    help="where to write the schema (default: the config's schema_file)",
  )
  command.add_argument('--force', action='store_true', help='overwrite an existing schema file')


def _runs_options(command):
  command.add_argument('action', nargs='?', choices=('list', 'show', 'compare'), default='list')
  command.add_argument(
    'ids',
    nargs='*',
    metavar='RUN_ID',
    help='show: one run; compare: two runs (a unique prefix will do)',
  )
  command.add_argument('--json', action='store_true', help='show: the whole run record')


def _rollback_options(command):
  command.add_argument(
    'version',
    nargs='?',
    type=int,
    help='the version to serve (default: the one before the serving one)',
  )


def _predict_options(command):
  command.add_argument('data', type=pathlib.Path, help='a CSV file with the raw columns')
  command.add_argument('--model', help='a SavedModel folder (default: the version now serving)')
  command.add_argument(
    '--output', type=pathlib.Path, help='write the predictions here (default: stdout)'
  )


def _tensorboard_options(command):
  command.add_argument('--host', default='localhost', help='default: localhost')
  command.add_argument('--port', type=int, default=6006, help='default: 6006')


def _image_options(command):
  command.add_argument('--tag', required=True, help='the image name, e.g. registry/name:tag')
  command.add_argument('--dry-run', action='store_true', help='print the docker command only')


def _run_options(command):
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


def _compile_submit_options(command):
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


def _manifests_options(command):
  command.add_argument(
    '--output',
    type=pathlib.Path,
    help='the YAML file (default: <output_root>/kubeflow/cluster.yaml)',
  )


def _submit_options(command):
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
    '--namespace', help='multi-user KFP: your profile namespace (default: kubeflow.user_namespace)'
  )
  command.add_argument(
    '--pipeline-root',
    metavar='URI',
    help='kubeflow-v2: gs:// or s3:// root for artifacts (default: kubeflow.v2_pipeline_root)',
  )


_OPTIONS = {
  'schema': _schema_options,
  'runs': _runs_options,
  'rollback': _rollback_options,
  'predict': _predict_options,
  'tensorboard': _tensorboard_options,
  'image': _image_options,
  'run': _run_options,
  'manifests': _manifests_options,
  'submit': _submit_options,
}
# Options several commands share.
_SHARED_OPTIONS = {('compile', 'submit'): _compile_submit_options}


def _options_of(name: str) -> list:
  """The functions that add command `name`'s own options."""
  shared = [add for names, add in _SHARED_OPTIONS.items() if name in names]
  return [add for add in (_OPTIONS.get(name),) if add] + shared


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
    for add in _options_of(name):
      add(command)
  return parser


def _compile(config, args) -> pathlib.Path:
  from pipeline.service import checks

  checks.preflight(config, data=False)
  output = kubeflow.compile_pipeline(
    config, args.target, args.output or kubeflow.default_output(config, args.target)
  )
  print(f'wrote {output} ({args.target})')
  return output


def _manifests(config, args):
  from pipeline.definition import manifests

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
  from pipeline.definition import image

  command = image.build(config, args.tag, dry_run=args.dry_run)
  print(('would run: ' if args.dry_run else 'built with: ') + ' '.join(command))
  settings = [f'kubeflow.image={args.tag}']
  schema = image.image_schema_file(config)
  if schema:
    settings.append(f'kubeflow.schema_file={schema}')
  print('then compile or submit with: ' + ' '.join(f'--set {s}' for s in settings))


def _schema(config, args):
  from components.example_gen import check_spans
  from pipeline.scaffold import schema

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
  with logs_to(config.output_root / 'logs' / 'predict.log') as err:
    from components import serving
    from pipeline.views import predict

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
  with logs_to(pathlib.Path(log)) as err:
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


def _overrides(args) -> list[str]:
  """`--set` and the flags that are config settings; ValueError for an empty reason."""
  overrides = list(args.set)
  if getattr(args, 'accept_drift', False):
    overrides.append('drift.accept=true')
  if getattr(args, 'replace_serving', None) is not None:
    if not args.replace_serving.strip():
      raise ValueError('--replace-serving needs a reason')
    # JSON is YAML: the reason stays one string whatever it holds.
    overrides.append(f'evaluator.replace_serving={json.dumps(args.replace_serving.strip())}')
  return overrides


def _catalog(config, args) -> int:
  # Reading SavedModels imports TensorFlow: its start-up chatter goes to a log.
  with logs_to(config.output_root / 'logs' / f'{args.command}.log') as err:
    from pipeline.views import catalog

    try:
      return catalog.main(config, args)
    except runlock.LockedError as e:
      print(f'error: {e}', file=err)
      return EXIT_LOCKED
    except (ValueError, OSError) as e:
      print(f'error: {error_text(e)}', file=err)
      return EXIT_USAGE if isinstance(e, ValueError) else EXIT_FAILED


def _tensorboard(config, args) -> int:
  from pipeline.views import tensorboard

  tensorboard.serve(config, args.host, args.port)
  return 0


# Commands that write a file or build something: TF's and TFX's start-up
# chatter of the quiet ones goes to a log, our lines and errors to the console.
_TOOLS = {
  'schema': _schema,
  'compile': _compile,
  'submit': _submit,
  'image': _image,
  'manifests': _manifests,
}
_QUIET = ('compile', 'submit')


def _tool(config, args) -> int:
  log = config.output_root / 'kubeflow' / f'{args.command}.log'
  quiet = args.command in _QUIET
  with logs_to(log) if quiet else contextlib.nullcontext(sys.stderr) as err:
    try:
      _TOOLS[args.command](config, args)
    except (OSError, ValueError, RuntimeError) as e:
      print(f'error: {error_text(e)}', file=err)
      return EXIT_USAGE if isinstance(e, ConfigError) else EXIT_FAILED
  return 0


def _run(config, args) -> int:
  from pipeline.views import html_report

  try:
    summary = lifecycle.run(config, sys.stderr, args.runner, report=html_report.write)
  except ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_USAGE
  except runlock.LockedError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_LOCKED
  return Outcome(summary.outcome).exit_code


_COMMANDS = {
  'run': _run,
  'runs': _catalog,
  'models': _catalog,
  'rollback': _catalog,
  'predict': _predict,
  'tensorboard': _tensorboard,
  **dict.fromkeys(_TOOLS, _tool),
}


def main(argv=None) -> int:
  """Parses the command line, loads the config once and runs the command; returns the exit code."""
  args = _parser().parse_args(argv)
  if args.command == 'init':
    return _init(args)
  try:
    config = load_config(args.config, _overrides(args))
  except (ConfigError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_USAGE
  return _COMMANDS[args.command](config, args)
