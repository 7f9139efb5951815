"""TensorBoard over every training run of an output root, each named by its run id.

TFX writes each Trainer execution's event files under
`pipeline/Trainer/model_run/<execution id>/`; a number says nothing to the
person comparing runs. So TensorBoard reads `<output_root>/tensorboard/`, a
folder of links `<run id>` -> that run's model_run, remade from the run
records each time it starts.
"""

import os
import pathlib
import sys

from components import ids
from pipeline.config import Config
from pipeline.record import EXECUTED
from pipeline.service import history


def logdir(config: Config) -> pathlib.Path:
  """Links every run that trained a model to its event files; returns the folder."""
  folder = config.output_root / 'tensorboard'
  folder.mkdir(parents=True, exist_ok=True)
  for link in folder.iterdir():
    if link.is_symlink():
      link.unlink()
  for record in history.load_runs(config):
    trained = any(c.name == ids.TRAINER and c.state == EXECUTED for c in record.components)
    model_run = record.artifacts.get('model_run')
    if trained and model_run and os.path.isdir(model_run):
      (folder / record.run_id).symlink_to(model_run, target_is_directory=True)
  return folder


def serve(config: Config, host: str, port: int) -> None:
  """Replaces this process with TensorBoard on `host:port` over `logdir(config)`."""
  folder = logdir(config)
  runs = sorted(p.name for p in folder.iterdir())
  print(
    f'tensorboard: {len(runs)} training run(s) in {folder}, at http://{host}:{port}/', flush=True
  )
  os.execv(
    sys.executable,
    [
      sys.executable,
      '-m',
      'tensorboard.main',
      '--logdir',
      str(folder),
      '--host',
      host,
      '--port',
      str(port),
    ],
  )
