"""The summary's slice labels and their order."""

from tensorflow_model_analysis.proto import metrics_for_slice_pb2

from pipeline.service import collect as report


def _key(column, **value):
  key = metrics_for_slice_pb2.SliceKey()
  key.single_slice_keys.add(column=column, **value)
  return key


def test_slice_labels_are_integers_and_sort_by_value():
  keys = [
    _key('hour', int64_value=10),
    _key('hour', float_value=0.0),
    _key('hour', int64_value=2),
    _key('hour', int64_value=1),
    _key('city', bytes_value=b'b'),
    _key('city', bytes_value=b'a'),
    _key('miles', float_value=2.5),
  ]
  ordered = [report._slice_name(k) for k in sorted(keys, key=report._slice_order)]
  assert ordered == ['city=a', 'city=b', 'hour=0', 'hour=1', 'hour=2', 'hour=10', 'miles=2.5']
