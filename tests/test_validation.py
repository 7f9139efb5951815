"""Anomalies are listed by feature and split."""

from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.validation import format_anomalies


def _anomalies(**features):
  result = anomalies_pb2.Anomalies()
  for name, description in features.items():
    result.anomaly_info[name].description = description
  return result


def test_no_anomalies_is_empty():
  assert format_anomalies([('train', _anomalies()), ('eval', _anomalies())]) == ''


def test_anomalies_are_listed_per_feature_with_their_splits():
  text = format_anomalies(
    [
      ('train', _anomalies(fare='Expected data of type: FLOAT but got BYTES')),
      (
        'eval',
        _anomalies(
          fare='Expected data of type: FLOAT but got BYTES', company='Unexpected string values'
        ),
      ),
    ]
  )
  lines = text.splitlines()
  assert lines[0] == 'data validation failed: anomalies in company, fare'
  assert '  - fare (train, eval split): Expected data of type: FLOAT but got BYTES' in lines
  assert '  - company (eval split): Unexpected string values' in lines
