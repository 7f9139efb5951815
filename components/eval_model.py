"""Every eval row through one or two EvalSavedModels, in batches.

The `eval` signature of an EvalSavedModel (what TFMA's own predict extractor
runs) takes serialized examples and gives the labels, the predictions and
the features the eval receiver parsed. Here it runs once per batch of
4,096 rows and keeps only what the metrics need: the labels, one
prediction, and the values of the slice features, as whole arrays. TFMA's
extractor instead splits every feature of every batch into per-row values
and hands Beam one dict per row.
"""

import concurrent.futures
import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

_BATCH = 4096


@dataclasses.dataclass(frozen=True)
class FeatureValues:
  """A feature's values over the eval rows: value i belongs to row `rows[i]`;
  a row may have none, one or several."""

  rows: np.ndarray
  values: np.ndarray


@dataclasses.dataclass(frozen=True)
class Predictions:
  labels: np.ndarray  # [rows] or [rows, 1]
  predictions: np.ndarray  # [rows] or [rows, outputs]
  features: dict[str, FeatureValues]  # the slice features, by name

  @property
  def rows(self) -> int:
    return len(self.labels)


def _batches(file_pattern: str) -> Iterator[np.ndarray]:
  import tensorflow as tf

  files = tf.io.gfile.glob(file_pattern)
  if not files:
    raise FileNotFoundError(f'no eval examples match {file_pattern}')
  dataset = tf.data.TFRecordDataset(files, compression_type='GZIP').batch(_BATCH)
  yield from dataset.prefetch(2).as_numpy_iterator()


class EvalModel:
  """An EvalSavedModel's `eval` signature: serialized examples in; labels,
  the prediction `prediction_key` and the features `features` out (TFMA's
  layout of that signature: `inputs/examples`, `labels[/...]`,
  `predictions/<key>`, `features/<name>`)."""

  def __init__(self, path: str, prediction_key: str, features: Sequence[str] = ()):
    import tensorflow as tf

    self._graph = tf.Graph()
    self._session = tf.compat.v1.Session(graph=self._graph)
    with self._graph.as_default():
      meta_graph = tf.compat.v1.saved_model.loader.load(self._session, ['eval'], path)
    signature = meta_graph.signature_def['eval']
    inputs, outputs = signature.inputs, signature.outputs
    label_keys = [k for k in inputs if k == 'labels' or k.startswith('labels/')]
    prediction = f'predictions/{prediction_key}'
    if prediction not in outputs:
      prediction = 'predictions' if 'predictions' in outputs else None
    if len(label_keys) != 1 or prediction is None:
      raise ValueError(
        f'{path}: the eval signature needs one label and the prediction '
        f'{prediction_key!r}; it has {sorted(label_keys)} and {sorted(outputs)}'
      )
    self._examples = inputs['inputs/examples'].name
    self._fetches = {
      'labels': inputs[label_keys[0]].name,
      'predictions': outputs[prediction].name,
      'refs': inputs['input_refs'].name,
    }
    self._features = {}  # name -> 'dense' or 'sparse'
    for name in features:
      info = inputs.get(f'features/{name}')
      if info is None:
        raise ValueError(f'{path}: the eval receiver gives no feature {name!r} to slice by')
      if info.name:
        self._fetches[f'dense/{name}'] = info.name
        self._features[name] = 'dense'
      else:
        self._fetches[f'indices/{name}'] = info.coo_sparse.indices_tensor_name
        self._fetches[f'values/{name}'] = info.coo_sparse.values_tensor_name
        self._features[name] = 'sparse'

  def predict(self, serialized: np.ndarray) -> dict:
    return self._session.run(self._fetches, {self._examples: serialized})

  def feature_values(self, fetched: dict, offset: int) -> dict[str, FeatureValues]:
    """The slice features of one fetched batch whose first row is row `offset`."""
    result = {}
    for name, kind in self._features.items():
      if kind == 'dense':
        values = np.asarray(fetched[f'dense/{name}'])
        values = values.reshape(len(values), -1)
        rows = np.repeat(np.arange(len(values)), values.shape[1])
        values = values.reshape(-1)
      else:
        rows = np.asarray(fetched[f'indices/{name}'])[:, 0]
        values = np.asarray(fetched[f'values/{name}'])
      result[name] = FeatureValues(rows + offset, values)
    return result

  def close(self):
    self._session.close()


def _concatenate(parts: list[FeatureValues]) -> FeatureValues:
  return FeatureValues(
    np.concatenate([p.rows for p in parts]), np.concatenate([p.values for p in parts])
  )


def predict(
  model_dirs: Sequence[str], examples: str, prediction_key: str, features: Sequence[str] = ()
) -> list[Predictions]:
  """Each model's labels and predictions on every example of the file
  pattern `examples`, with the values of `features` (from the first model's
  eval receiver: a serving model older than a slice feature need not have
  it) in each."""
  models = [
    EvalModel(d, prediction_key, features if i == 0 else ()) for i, d in enumerate(model_dirs)
  ]
  # The sessions release the GIL while they run: one thread each.
  pool = concurrent.futures.ThreadPoolExecutor(len(models))
  labels = [[] for _ in models]
  predictions = [[] for _ in models]
  found: dict[str, list[FeatureValues]] = {name: [] for name in features}
  offset = 0
  try:
    for batch in _batches(examples):
      fetched = list(pool.map(lambda m, b=batch: m.predict(b), models))
      for f in fetched[1:]:
        if not np.array_equal(fetched[0]['refs'], f['refs']):
          raise ValueError('the models read different rows from the same examples')
      for i, f in enumerate(fetched):
        labels[i].append(f['labels'])
        predictions[i].append(f['predictions'])
      for name, values in models[0].feature_values(fetched[0], offset).items():
        found[name].append(values)
      offset += len(fetched[0]['labels'])
  finally:
    pool.shutdown()
    for m in models:
      m.close()
  if not offset:
    raise ValueError(f'no eval examples in {examples}')
  slice_values = {name: _concatenate(parts) for name, parts in found.items()}
  return [
    Predictions(np.concatenate(ls), np.concatenate(ps), slice_values)
    for ls, ps in zip(labels, predictions, strict=True)
  ]
