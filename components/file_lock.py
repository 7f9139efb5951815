"""The one file lock: an OS-level `flock`, released by the kernel when its
process dies however it dies, so a killed run never leaves a stale lock.

Used for the run lock of an output root and serving directory
(`pipeline.service.runlock`) and for the push's compare-and-swap
(`components.serving`). Not the `filelock` package: callers write who holds
the lock into the lock file and read it back to name the holder, and probe
whether anyone holds it; `filelock` keeps its descriptor to itself.
"""

import fcntl
import os
import pathlib
import time

POLL_SECONDS = 0.5


def acquire(path: pathlib.Path | str, wait_s: float | None = None) -> int:
  """Takes an exclusive lock on `path` (made if missing); returns its open
  descriptor, which holds the lock until closed.

  `wait_s` None waits as long as it takes; otherwise the lock is tried every
  POLL_SECONDS for `wait_s` seconds, then BlockingIOError.
  """
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  if wait_s is None:
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd
  deadline = time.monotonic() + wait_s
  while True:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      return fd
    except BlockingIOError:
      if time.monotonic() >= deadline:
        os.close(fd)
        raise
      time.sleep(POLL_SECONDS)


def held(path: pathlib.Path | str) -> bool:
  """Whether some process (this one included) holds the lock on `path` now."""
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:
    return False
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    return False
  except BlockingIOError:
    return True
  finally:
    os.close(fd)  # releases the probe's lock, if it got one
