"""The house's doors: which package may import which, read from the source.

`components/` never imports `pipeline/`; neither imports the user's code
(`trainer_module`); inside `pipeline/`, each room uses only the rooms below
it: the definition (and runners) nothing but the shared contract, the run
service the definition, the operator's views the service, and only the CLI
all of them.
"""

import ast

import pytest

from tests.conftest import PROJECT_ROOT

# What each package may import from this project, besides itself and `components`.
ALLOWED = {
  'components': set(),
  'pipeline.definition': {'pipeline.config', 'pipeline.record'},
  'pipeline.scaffold': {'pipeline.config', 'pipeline.record'},
  'pipeline.service': {
    'pipeline.config',
    'pipeline.record',
    'pipeline.console',
    'pipeline.definition',
  },
  'pipeline.views': {
    'pipeline.config',
    'pipeline.record',
    'pipeline.service',
    'pipeline.definition',
    'pipeline.scaffold',
  },
}
ROOMS = ('definition', 'service', 'views', 'scaffold')


def _imports(path) -> set[str]:
  names = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names |= {f'{node.module}.{alias.name}' for alias in node.names} | {node.module}
  return {n for n in names if n.split('.')[0] in ('pipeline', 'components', 'trainer_module')}


def _package(path) -> str:
  parts = path.relative_to(PROJECT_ROOT).with_suffix('').parts
  return '.'.join(parts[:2]) if parts[0] == 'pipeline' and parts[1] in ROOMS else parts[0]


@pytest.mark.parametrize('package', sorted(ALLOWED))
def test_each_package_imports_only_what_is_below_it(package):
  folder = PROJECT_ROOT.joinpath(*package.split('.'))
  files = sorted(folder.rglob('*.py'))
  assert files
  for path in files:
    for name in _imports(path):
      if name.startswith((package, 'components')) and package != 'components':
        continue
      if package == 'components' and name.startswith('components'):
        continue
      allowed = ALLOWED[package]
      assert any(name == a or name.startswith(a + '.') for a in allowed), (
        f'{path.relative_to(PROJECT_ROOT)} imports {name}'
      )


def test_nothing_of_ours_imports_the_users_module():
  for folder in ('pipeline', 'components'):
    for path in (PROJECT_ROOT / folder).rglob('*.py'):
      assert not any(n.startswith('trainer_module') for n in _imports(path)), path


@pytest.mark.parametrize('room', ROOMS)
def test_each_room_opens_with_a_line_saying_what_it_holds(room):
  module = ast.parse((PROJECT_ROOT / 'pipeline' / room / '__init__.py').read_text())
  docstring = ast.get_docstring(module)
  assert docstring and len(docstring.splitlines()) == 1
