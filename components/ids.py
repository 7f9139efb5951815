"""The pipeline's component ids: its node names in ML Metadata, the run record and the console."""

EXAMPLE_GEN = 'CsvExampleGen'
STATISTICS_GEN = 'StatisticsGen'
SCHEMA_GEN = 'SchemaGen'
EXAMPLE_VALIDATOR = 'ExampleValidator'
TRANSFORM = 'Transform'
TRAINER = 'Trainer'
EVALUATOR = 'Evaluator'
PUSHER = 'Pusher'

# In the order they run.
ALL = (
  EXAMPLE_GEN,
  STATISTICS_GEN,
  SCHEMA_GEN,
  EXAMPLE_VALIDATOR,
  TRANSFORM,
  TRAINER,
  EVALUATOR,
  PUSHER,
)
