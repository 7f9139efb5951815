"""The user's module: found, checked against the contract, and fingerprinted.

User code is referenced by dotted module path (no TFX user-module wheels), so
TFX's cache key never sees its source; the fingerprint, put into the
components' config, makes any edit of it re-run them.
"""

import ast
import difflib
import hashlib
import importlib
import importlib.util
import inspect
import os
import pathlib
import sys
import sysconfig

import pydantic

from pipeline.config import Config, ConfigError

# The names the pipeline calls, and how (docs/your-own-table.md, the user-module contract).
CONTRACT = {'preprocessing_fn': ('inputs', 'custom_config'), 'trainer_fn': ('fn_args', 'schema')}
# Installed libraries and the standard library: not the user's code.
_LIBRARY_DIRS = tuple(
  sorted(
    {
      os.path.realpath(sysconfig.get_paths()[key]) + os.sep
      for key in ('stdlib', 'platstdlib', 'purelib', 'platlib')
    }
  )
)


def add_code_dir(config: Config) -> None:
  """Puts `code_dir` first on the import path, here and for every process this one starts.

  `code_dir` is how a project made by `pipeline init` is found without being
  installed; training replicas and Beam workers inherit PYTHONPATH.
  """
  if not config.code_dir:
    return
  if config.code_dir not in sys.path:
    sys.path.insert(0, config.code_dir)
    importlib.invalidate_caches()
  paths = os.environ.get('PYTHONPATH', '').split(os.pathsep)
  if config.code_dir not in paths:
    os.environ['PYTHONPATH'] = os.pathsep.join([config.code_dir] + [p for p in paths if p])


def check_module(config: Config):
  """Imports the user's module and checks it has every name of CONTRACT.

  Raises:
    ConfigError: one line naming the module and what is missing or broken.
  """
  add_code_dir(config)
  name = config.module
  try:
    module = importlib.import_module(name)
  except ModuleNotFoundError as e:
    where = (
      f' (looked in code_dir {config.code_dir} and the installed packages)'
      if config.code_dir
      else ''
    )
    raise ConfigError(f"config key 'module': cannot import {name!r}: {e}{where}") from None
  except Exception as e:  # the user's code failed while importing
    raise ConfigError(
      f"config key 'module': importing {name!r} failed: {e.__class__.__name__}: {e}"
    ) from None
  for fn_name, params in CONTRACT.items():
    fn = getattr(module, fn_name, None)
    call = f'{name}.{fn_name}({", ".join(params)})'
    if not callable(fn):
      raise ConfigError(
        f"config key 'module': {name!r} has no function {fn_name}; the pipeline calls {call}"
      )
    if not _callable_as(fn, params):
      raise ConfigError(f"config key 'module': {name}.{fn_name} cannot be called as {call}")
  declared = getattr(module, 'HParams', None)
  if isinstance(declared, type) and issubclass(declared, pydantic.BaseModel):
    check_hparams(declared, dict(config.trainer.hparams), name)
  return module


def check_hparams(declared: type[pydantic.BaseModel], hparams: dict, module: str) -> None:
  """`hparams` (the config's trainer.hparams) against the module's `HParams`.

  Raises:
    ConfigError: one line naming the first unknown or mistyped hyperparameter.
  """
  known = [field.alias for field in declared.__fields__.values()]
  for key in hparams:
    if key not in known:
      close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
      hint = (
        f"did you mean 'trainer.hparams.{close[0]}'?"
        if close
        else f'its hyperparameters: {", ".join(known)}'
      )
      raise ConfigError(
        f"config key 'trainer.hparams.{key}': {module}.HParams declares no such "
        f'hyperparameter; {hint}'
      )
  try:
    declared.parse_obj(hparams)
  except pydantic.ValidationError as e:
    first = e.errors()[0]
    key = '.'.join(str(part) for part in first['loc'])
    raise ConfigError(
      f"config key 'trainer.hparams.{key}': {first['msg']} ({module}.HParams)"
    ) from None


def _callable_as(fn, params) -> bool:
  """Whether fn(*params) works; `custom_config` is optional (TFX passes it only
  to functions that take it)."""
  signature = inspect.signature(fn)
  calls = [(params, {})]
  if params[-1] == 'custom_config':
    calls = [(params[:-1], {}), (params[:-1], {'custom_config': None})]
  for args, kwargs in calls:
    try:
      signature.bind(*args, **kwargs)
      return True
    except TypeError:
      pass
  return False


def _is_library(path: str) -> bool:
  return os.path.realpath(path).startswith(_LIBRARY_DIRS)


def _source(spec) -> str | None:
  origin = spec.origin if spec else None
  if not origin or not origin.endswith('.py') or _is_library(origin):
    return None
  return origin


def _imported_names(path: str, module: str, is_package: bool) -> set[str]:
  """Modules `path` imports (absolute names), from its syntax tree."""
  tree = ast.parse(pathlib.Path(path).read_bytes(), path)
  package = module if is_package else module.rpartition('.')[0]
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        parts = package.split('.')
        base = '.'.join(parts[: len(parts) - node.level + 1])
        target = f'{base}.{node.module}' if node.module else base
      else:
        target = node.module
      names.add(target)
      # `from package import submodule` imports a module too.
      names.update(f'{target}.{alias.name}' for alias in node.names if alias.name != '*')
  return names


def _find_spec(name: str):
  top = name.split('.')[0]
  top_spec = importlib.util.find_spec(top)
  # A library's submodules are never looked up: that would import the library.
  if (
    top_spec is None
    or (top_spec.origin and _is_library(top_spec.origin))
    or (top_spec.origin in (None, 'built-in', 'frozen') and not top_spec.submodule_search_locations)
  ):
    return None
  try:
    return importlib.util.find_spec(name)
  except (ImportError, AttributeError, ValueError):
    return None  # `from module import a_function`: not a module


def source_files(module: str) -> list[pathlib.Path]:
  """Every source file of the user's code that `module` depends on.

  That is: the files of `module`'s top-level package (which covers imports
  made by name at run time inside it), plus every module it imports,
  directly or not, that is not part of the standard library or an installed
  library (site-packages), wherever it lives.
  """
  files: set[pathlib.Path] = set()
  spec = importlib.util.find_spec(module.split('.')[0])
  if spec is None:
    raise ConfigError(f"config key 'module': cannot import {module!r}")
  if spec and spec.submodule_search_locations and _source(spec):
    root = pathlib.Path(spec.origin).parent
    files.update(p.resolve() for p in root.rglob('*.py'))
  seen, pending = set(), [module]
  while pending:
    name = pending.pop()
    if name in seen:
      continue
    seen.add(name)
    spec = _find_spec(name)
    path = _source(spec)
    if not path:
      continue
    files.add(pathlib.Path(path).resolve())
    pending.extend(_imported_names(path, name, bool(spec.submodule_search_locations)))
  return sorted(files)


def fingerprint(config: Config) -> str:
  """SHA-256 over the content of `source_files(config.module)`."""
  add_code_dir(config)
  digest = hashlib.sha256()
  for path in source_files(config.module):
    digest.update(str(path).encode() + b'\0' + path.read_bytes() + b'\0')
  return digest.hexdigest()
