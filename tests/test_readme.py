"""The README and docs: documentation a newcomer can trust. Every relative
link and anchor resolves, every command it shows is one the CLI or the
Makefile accepts, and it stays short and free of measurement history."""

import re
import shlex
import subprocess

import pytest

from pipeline import cli
from tests.conftest import PROJECT_ROOT

README = PROJECT_ROOT / 'README.md'
DOCS = sorted((PROJECT_ROOT / 'docs').glob('*.md'))


def _slug(heading: str) -> str:
  """GitHub's anchor for a heading."""
  text = re.sub(r'[`*_]', '', heading.strip().lower())
  text = re.sub(r'[^\w\- ]', '', text)
  return text.replace(' ', '-')


def _anchors(path) -> set[str]:
  text = re.sub(r'```.*?```', '', path.read_text(), flags=re.S)
  return {_slug(m) for m in re.findall(r'^#+ (.+)$', text, flags=re.M)}


@pytest.mark.parametrize('page', [README, *DOCS], ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page):
  text = re.sub(r'```.*?```', '', page.read_text(), flags=re.S)
  links = re.findall(r'\]\(([^)\s]+)\)', text)
  assert links or page != README
  for link in links:
    if re.match(r'[a-z]+://', link):
      continue
    target, _, anchor = link.partition('#')
    path = (page.parent / target).resolve() if target else page
    assert path.exists(), f'{page.name}: {link}: no {path}'
    if anchor:
      assert anchor in _anchors(path), f'{page.name}: {link}: no heading #{anchor} in {path.name}'


def _shown_commands() -> list[str]:
  """Every `python -m pipeline ...` the README shows, in code spans and blocks."""
  text = README.read_text()
  pieces = re.findall(r'```[a-z]*\n(.*?)```', text, flags=re.S)
  pieces += re.findall(r'`([^`]+)`', re.sub(r'```.*?```', '', text, flags=re.S).replace('\n', ' '))
  commands = []
  for piece in pieces:
    for line in piece.splitlines():
      commands.extend(
        ' '.join(m.group(1).split()) for m in re.finditer(r'python -m pipeline ([^;|>`]*)', line)
      )
  return commands


def _concrete(command: str) -> list[str]:
  """A shown command with its placeholders filled: optional parts dropped,
  the first of alternatives taken, names in capitals given a value."""
  command = re.sub(r'\[[^\]]*\]', '', command)
  command = re.sub(r'(\S+)\|\S+', r'\1', command)
  words = shlex.split(command.replace('"REASON"', 'REASON'))
  return ['value' if re.fullmatch(r'[A-Z][A-Z_.]*', w) else w for w in words]


def test_every_pipeline_command_it_shows_is_accepted(capsys):
  commands = _shown_commands()
  shown = {c.split()[0] for c in commands if c}
  # Every command of the CLI that users run by hand is shown at least once.
  assert {'init', 'run', 'runs', 'models', 'rollback', 'predict', 'tensorboard', 'compile'} <= shown
  parser = cli._parser()
  for command in commands:
    if not command or command.startswith('['):
      continue
    try:
      parser.parse_args(_concrete(command))
    except SystemExit as e:
      pytest.fail(f'README shows `python -m pipeline {command}`: {capsys.readouterr().err} ({e})')


def test_every_make_target_it_shows_exists():
  help_text = subprocess.run(
    ['make', '-s', '-C', str(PROJECT_ROOT), 'help'], capture_output=True, text=True, check=True
  ).stdout
  targets = set(re.findall(r'^\s*(?:\x1b\[\d+m)?([a-z][a-z0-9-]*)', help_text, flags=re.M))
  for page in (README, *DOCS):
    for target in re.findall(r'`make ([a-z][a-z0-9-]*)', page.read_text()):
      assert target in targets, f'{page.name} shows `make {target}`, which `make help` lacks'


def test_the_readme_is_documentation_not_history():
  text = README.read_text()
  assert len(text.splitlines()) <= 400
  prose = re.sub(r'```.*?```', '', text, flags=re.S)
  assert not re.findall(r'\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,10}\b', prose), (
    'commit hashes in the README'
  )
  assert 'DESIGN.md' not in text
