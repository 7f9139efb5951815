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
import json
import subprocess
import sys
import tempfile

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


class _Process:
  """A `python -m components.smoke_check` process, its stderr in a file: nobody
  reads while the caller works, and a full pipe would stall the check."""

  def __init__(self, *args: str):
    self.stderr = tempfile.TemporaryFile(mode='w+')  # noqa: SIM115 (closed by Check)
    self.popen = subprocess.Popen(
      [sys.executable, '-m', 'components.smoke_check', *args],
      stdin=subprocess.PIPE,
      stdout=subprocess.DEVNULL,
      stderr=self.stderr,
      text=True,
    )


# A process that has imported TensorFlow and waits for one check (`prewarm`).
_warm: _Process | None = None


def prewarm() -> None:
  """Starts a checking process now, which the next `Check` of this process
  takes: importing TensorFlow (seconds) then overlaps what runs meanwhile
  (the Trainer). It has imported nothing else, as a fresh process."""
  global _warm
  if _warm is None or _warm.popen.poll() is not None:
    _warm = _Process('--wait')


def discard_warm() -> None:
  """Stops a prewarmed process that no `Check` took."""
  global _warm
  if _warm is not None:
    _warm.popen.kill()
    _warm.popen.wait()
    _warm.stderr.close()
    _warm = None


class Check:
  """`check` running in a new Python process (the prewarmed one, if any)."""

  def __init__(self, model_dir: str, examples_glob: str):
    global _warm
    warm, _warm = _warm, None
    if warm is not None and warm.popen.poll() is None:
      warm.popen.stdin.write(json.dumps([model_dir, examples_glob]) + '\n')
      warm.popen.stdin.close()
      process = warm
    else:
      if warm is not None:
        warm.stderr.close()
      process = _Process(model_dir, examples_glob)
      process.popen.stdin.close()
    self._process, self._stderr = process.popen, process.stderr

  def outcome(self) -> str | None:
    """Waits for the check; returns what is wrong with the model, or None."""
    try:
      returncode = self._process.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
      self.kill()
      return f'the smoke check took more than {TIMEOUT_S} s'
    self._stderr.seek(0)
    prefix = 'smoke check failed: '
    lines = [line for line in self._stderr.read().splitlines() if line.startswith(prefix)]
    self._stderr.close()
    if returncode == 0:
      return None
    return (
      lines[-1].removeprefix(prefix) if lines else f'the smoke check exited with code {returncode}'
    )

  def kill(self) -> None:
    """Stops the check, whose outcome nobody will ask for."""
    self._process.kill()
    self._process.wait()
    self._stderr.close()


def run_in_fresh_process(model_dir: str, examples_glob: str) -> str | None:
  """Runs `check` in a new Python process; returns what is wrong, or None."""
  return Check(model_dir, examples_glob).outcome()


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m components.smoke_check', description=__doc__)
  parser.add_argument('model_dir', nargs='?')
  parser.add_argument('examples_glob', nargs='?')
  parser.add_argument('--count', type=int, default=SAMPLE)
  parser.add_argument(
    '--wait',
    action='store_true',
    help='import TensorFlow, then read `["MODEL_DIR", "EXAMPLES_GLOB"]` from stdin',
  )
  args = parser.parse_args(argv)
  if args.wait:
    import tensorflow  # noqa: F401 (the start-up a prewarmed process pays ahead)

    request = sys.stdin.readline()
    if not request:
      return 0  # discarded
    args.model_dir, args.examples_glob = json.loads(request)
  elif not args.examples_glob:
    parser.error('MODEL_DIR and EXAMPLES_GLOB are required without --wait')
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
