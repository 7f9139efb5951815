"""Small synthetic tables with a real signal, one per task, for `pipeline init` tests."""

import csv
import math
import pathlib
import random

CITIES = ['north', 'south', 'east', 'west']
PLANS = ['basic', 'plus', 'pro']
SPECIES = ['setosa', 'versicolor', 'virginica']


def _row(rng: random.Random, task: str, index: int) -> dict:
  size = rng.uniform(20, 200)
  age = rng.randint(18, 80)
  city = rng.choice(CITIES)
  plan = rng.choice(PLANS)
  row = {
    'customer_id': f'c{index:05d}',
    'size': f'{size:.1f}',
    'age': str(age),
    'city': city,
    'plan': plan,
    # An optional column: empty in one row of ten.
    'score': '' if index % 10 == 0 else f'{rng.gauss(0, 1):.3f}',
  }
  if task == 'binary':
    logit = 0.04 * (size - 110) + (1.5 if plan == 'pro' else -0.5) + rng.gauss(0, 0.7)
    row['churned'] = 'yes' if logit > 0 else 'no'
  elif task == 'multiclass':
    value = size + 40 * PLANS.index(plan) + rng.gauss(0, 12)
    row['species'] = SPECIES[0] if value < 110 else SPECIES[1] if value < 180 else SPECIES[2]
  else:
    row['price'] = f'{1000 + 12.5 * size + 300 * CITIES.index(city) + rng.gauss(0, 60):.2f}'
  return row


LABELS = {'binary': 'churned', 'multiclass': 'species', 'regression': 'price'}


# Header cells as a table from anywhere may spell them (line breaks, quotes,
# backslashes, `#`, `"""`, HTML, non-ASCII), each one TensorFlow accepts.
HOSTILE_NAMES = {
  'size': 'size (m\u00b2)\r\n"quoted" # x',
  'age': "age', 'a>ge",
  'city': '<b>city \\ """',
  'plan': "plan's\ttier \u2028 caf\u00e9",
  'score': 'score\nimport os; os.system("touch PWNED") #',
}


def write_table(
  path: pathlib.Path, task: str, rows: int, seed: int = 0, names: dict | None = None
) -> pathlib.Path:
  """A CSV table for `task` (label column LABELS[task]) of `rows` rows at `path`;
  `names` renames columns in the header (e.g. HOSTILE_NAMES)."""
  rng = random.Random(seed)
  records = [_row(rng, task, i) for i in range(rows)]
  if names:
    records = [{names.get(k, k): v for k, v in r.items()} for r in records]
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
  return path


def label_std(path: pathlib.Path, label: str) -> float:
  with open(path, newline='') as f:
    values = [float(r[label]) for r in csv.DictReader(f)]
  mean = sum(values) / len(values)
  return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
