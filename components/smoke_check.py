"""A candidate model must load and predict before it is pushed.

`python -m components.smoke_check MODEL_DIR EXAMPLES_GLOB` loads the serving
SavedModel in a fresh process (as a server would, with nothing of the
training process around it), feeds it a sample of raw serialized
tf.Examples through its `serving_default` signature, and fails with one line
if it cannot load, cannot predict, or predicts NaN or infinity. TFX's
InfraValidator gives this guarantee with TF Serving in Docker; this needs
neither.
"""

import argparse
import subprocess
import sys

SAMPLE = 64
TIMEOUT_S = 300


def check(model_dir: str, examples_glob: str, count: int = SAMPLE) -> int:
  """Predicts on up to `count` examples; returns how many. Raises ValueError on a bad model."""
  import numpy as np
  import tensorflow as tf

  files = tf.io.gfile.glob(examples_glob)
  if not files:
    raise ValueError(f'no examples match {examples_glob}')
  batch = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type='GZIP').take(count)]
  try:
    model = tf.saved_model.load(model_dir)
  except Exception as e:  # any failure to load is the finding
    raise ValueError(f'the model does not load: {e.__class__.__name__}: {e}') from None
  signature = model.signatures.get('serving_default')
  if signature is None:
    raise ValueError('the model has no serving_default signature')
  inputs = signature.structured_input_signature[1]
  if len(inputs) != 1:
    raise ValueError(f'serving_default takes {len(inputs)} inputs; expected serialized tf.Examples')
  (name,) = inputs
  try:
    outputs = signature(**{name: tf.constant(batch)})
  except Exception as e:
    raise ValueError(
      f'the model fails to predict: {e.__class__.__name__}: {str(e).strip().splitlines()[0]}'
    ) from None
  for key, value in outputs.items():
    if value.dtype.is_floating and not np.all(np.isfinite(value.numpy())):
      raise ValueError(f'the model predicts NaN or infinity ({key!r}) on raw eval examples')
  return len(batch)


def run_in_fresh_process(model_dir: str, examples_glob: str) -> str | None:
  """Runs `check` in a new Python process; returns what is wrong, or None."""
  result = subprocess.run(
    [sys.executable, '-m', 'components.smoke_check', model_dir, examples_glob],
    capture_output=True,
    text=True,
    timeout=TIMEOUT_S,
  )
  if result.returncode == 0:
    return None
  lines = [line for line in result.stderr.splitlines() if line.startswith('smoke check failed: ')]
  return (
    lines[-1].removeprefix('smoke check failed: ')
    if lines
    else (f'the smoke check exited with code {result.returncode}')
  )


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m components.smoke_check', description=__doc__)
  parser.add_argument('model_dir')
  parser.add_argument('examples_glob')
  parser.add_argument('--count', type=int, default=SAMPLE)
  args = parser.parse_args(argv)
  try:
    count = check(args.model_dir, args.examples_glob, args.count)
  except ValueError as e:
    print(f'smoke check failed: {e}', file=sys.stderr)
    return 1
  print(f'predicted {count} examples')
  return 0


if __name__ == '__main__':
  from components.fast_exit import exit_now

  exit_now(main())
