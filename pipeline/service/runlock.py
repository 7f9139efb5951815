"""One run at a time per output root (metadata store, run records) and per serving directory.

The file lock (`components.file_lock`) of each, held for the whole run and
released by the kernel when the process dies, however it dies. The lock
file says who holds it, so a refused run can name it.
"""

import contextlib
import json
import os
import pathlib
import socket
import time
from collections.abc import Iterator

from components import file_lock

LOCK_FILE = '.run.lock'


class LockedError(RuntimeError):
  """Another run holds a lock this run needs; the message names it."""


def _holder(path: pathlib.Path, wait_s: float = 1.0) -> str:
  """Who holds the lock, as the lock file says. A holder writes it just after
  taking the lock: a run refused in that instant waits up to `wait_s` for it."""
  deadline = time.monotonic() + wait_s
  while True:
    try:
      info = json.loads(path.read_text() or '{}')
    except (OSError, ValueError):
      info = {}
    if info or time.monotonic() >= deadline:
      break
    time.sleep(0.05)
  if not info:
    return 'another process'
  return (
    f'run {info.get("run_id")} (pid {info.get("pid")} on {info.get("host")}, '
    f'started {info.get("started")})'
  )


def _acquire(directory: pathlib.Path, wait_s: float, what: str):
  directory.mkdir(parents=True, exist_ok=True)
  path = directory / LOCK_FILE
  try:
    return file_lock.acquire(path, wait_s), path
  except BlockingIOError:
    waited = f' after waiting {wait_s:g} s' if wait_s else ''
    raise LockedError(
      f'{what} {directory} is in use by {_holder(path)}{waited}; '
      'one run at a time (set run_lock_wait_s to wait longer)'
    ) from None


@contextlib.contextmanager
def hold(run_id: str, directories: dict[str, pathlib.Path], wait_s: float = 0) -> Iterator[None]:
  """Holds the run lock of every directory in `directories` (description -> path).

  Raises:
    LockedError: a directory stayed locked by another run for `wait_s` seconds.
  """
  held = []
  info = json.dumps(
    {
      'run_id': run_id,
      'pid': os.getpid(),
      'host': socket.gethostname(),
      'started': time.strftime('%Y-%m-%dT%H:%M:%S'),
    }
  )
  try:
    # Always in the same order, so two runs cannot each hold one and wait for the other.
    for what, directory in sorted(directories.items(), key=lambda item: str(item[1])):
      fd, path = _acquire(pathlib.Path(directory), wait_s, what)
      held.append((fd, path))
      os.ftruncate(fd, 0)
      os.pwrite(fd, info.encode(), 0)
    yield
  finally:
    for fd, _ in reversed(held):
      with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
      os.close(fd)  # releases the lock


def held(directory: pathlib.Path) -> bool:
  """Whether some process (this one included) holds `directory`'s run lock now."""
  return file_lock.held(pathlib.Path(directory) / LOCK_FILE)
