"""`create_pipeline(config)`: the one pipeline definition, shared by every runner."""

from tfx.components import StatisticsGen, Trainer
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import trainer_pb2, transform_pb2

from components import contract, ids
from components.evaluation import ServingBaselineEvaluator, change_gate, eval_config
from components.example_gen import TRAIN, SpanCsvExampleGen
from components.pushing import CheckedPusher
from components.training import ARCHITECTURE_KEY, EstimatorTrainerExecutor, architecture
from components.transforming import TraceOnceTransform
from components.validation import CuratedSchemaGen, GatingExampleValidator
from pipeline.config import Config, Locations
from pipeline.definition import usercode


def create_pipeline(config: Config, locations: Locations | None = None) -> tfx_pipeline.Pipeline:
  """The TFX pipeline for `config`, without any orchestrator details.

  Runners add the metadata connection, Beam arguments or container image.
  `locations` says where the data, pipeline root and serving models are as
  the components will see them (default: this machine's, from `config`).
  """
  locations = locations or config.local_locations()
  fingerprint = usercode.fingerprint(config)
  push_dir = locations.push_dir
  module_args = contract.ModuleArgs(
    task=config.task, hparams=config.trainer.hparams, code_fingerprint=fingerprint
  )
  model_architecture = architecture(module_args)

  # Ingests the newest spans of CSV files, refusing malformed ones with the file and line.
  example_gen = SpanCsvExampleGen(
    input_base=locations.data_root,
    pattern=config.spans.pattern,
    window=config.spans.window,
    missing_values=config.missing_values,
  ).with_id(ids.EXAMPLE_GEN)
  # Statistics of every split, which validation checks against the schema.
  statistics_gen = StatisticsGen(examples=example_gen.outputs['examples']).with_id(
    ids.STATISTICS_GEN
  )
  # The curated, checked-in schema (regenerate with `python -m pipeline schema`).
  schema_gen = CuratedSchemaGen(
    schema_file=locations.schema_file, local_copy=config.schema_file
  ).with_id(ids.SCHEMA_GEN)
  # Stops the run on any anomaly or drift from the previous span, before
  # anything is trained on bad data (Transform, which only analyses the
  # data, runs meanwhile).
  example_validator = GatingExampleValidator(
    statistics=statistics_gen.outputs['statistics'],
    schema=schema_gen.outputs['schema'],
    label=config.task.label,
    drift_gate=contract.DriftGate(policy=config.drift, records_dir=locations.drift_records),
  ).with_id(ids.EXAMPLE_VALIDATOR)
  # Feature engineering, saved as a graph reused by training, serving and TFMA.
  transform = TraceOnceTransform(
    examples=example_gen.outputs['examples'],
    schema=schema_gen.outputs['schema'],
    preprocessing_fn=f'{config.module}.preprocessing_fn',
    # Without the training-only hparams: a new learning rate reuses the
    # cached Transform.
    custom_config=contract.dump(module_args.shaping()),
    # Analysed on the train split only, and nothing written but the graph:
    # the Trainer's input_fn transforms the raw examples it reads, a few
    # batches of them, where a transformed copy would cost a pass over every
    # row (docs/performance.md).
    splits_config=transform_pb2.SplitsConfig(analyze=[TRAIN]),
    materialize=False,
    # A TF1 graph is traced once, where TF2 traces several tf.functions (the
    # Estimator consumes it in graph mode anyway); the analyzer cache only
    # helps incremental runs over many spans; StatisticsGen already profiled
    # the raw data. Each costs seconds a run (docs/performance.md).
    disable_statistics=True,
    disable_analyzer_cache=True,
    force_tf_compat_v1=True,
  ).with_id(ids.TRANSFORM)
  # Trains the user's Estimator; warm-starts from the model now serving.
  trainer = Trainer(
    trainer_fn=f'{config.module}.trainer_fn',
    custom_executor_spec=executor_spec.ExecutorClassSpec(EstimatorTrainerExecutor),
    examples=example_gen.outputs['examples'],
    transform_graph=transform.outputs['transform_graph'],
    schema=schema_gen.outputs['schema'],
    train_args=trainer_pb2.TrainArgs(num_steps=config.trainer.train_steps),
    eval_args=trainer_pb2.EvalArgs(num_steps=config.trainer.eval_steps),
    custom_config=contract.dump(
      contract.TrainerPayload(
        module_args=module_args,
        cluster=config.cluster_spec(),
        warm_start=config.trainer.warm_start,
        push_dir=push_dir,
        architecture=model_architecture,
      )
    ),
  ).with_id(ids.TRAINER)
  trainer.add_upstream_node(example_validator)
  # Blesses the model only if good enough and not worse than the one serving
  # beyond the noise of the eval rows;
  # smoke-checks its serving model meanwhile, in a fresh process.
  evaluator = ServingBaselineEvaluator(
    examples=example_gen.outputs['examples'],
    model=trainer.outputs['model'],
    eval_config=eval_config(
      config.task, config.gate_metric, config.evaluator.threshold, config.evaluator.slice_features
    ),
    baseline_push_dir=push_dir,
    gate=change_gate(
      config.task, config.gate_metric, config.evaluator.max_change, config.evaluator.replace_serving
    ),
  ).with_id(ids.EVALUATOR)
  # Publishes a blessed model that passed the smoke check, atomically, if the
  # model it was compared with still serves.
  pusher = CheckedPusher(
    model=trainer.outputs['model'],
    model_blessing=evaluator.outputs['blessing'],
    push_dir=push_dir,
    custom_config={ARCHITECTURE_KEY: model_architecture},
  ).with_id(ids.PUSHER)

  return tfx_pipeline.Pipeline(
    pipeline_name=config.pipeline_name,
    pipeline_root=locations.pipeline_root,
    components=[
      example_gen,
      statistics_gen,
      schema_gen,
      example_validator,
      transform,
      trainer,
      evaluator,
      pusher,
    ],
    enable_cache=True,
  )
