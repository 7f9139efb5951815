"""A folder's file list: its files and their sizes, recorded when it is made and
checked before it is trusted (a cached artifact, a serving version).

Sizes, not hashes: checking must stay cheap on every run (a stat per file),
and what it guards against is a file deleted or cut short (a disk full, a
clean-up gone wrong, a copy interrupted), not tampering.
"""

import os


def files(root: str, skip: tuple[str, ...] = ()) -> dict[str, int]:
  """Every file under `root` (relative path: size), but those in `skip`;
  `{'.': size}` if `root` is a file."""
  if os.path.isfile(root):
    return {'.': os.path.getsize(root)}
  found = {}
  for folder, _, names in os.walk(root):
    for name in names:
      path = os.path.join(folder, name)
      relative = os.path.relpath(path, root)
      if relative not in skip:
        found[relative] = os.path.getsize(path)
  return found


def problem(root: str, recorded: dict, when: str, wanted=None) -> str | None:
  """The first file of `recorded` (relative path: size) under `root` that is
  gone or changed size, among those `wanted` selects (all by default); None
  if there is none. `when` names the moment it was recorded ('pushed')."""
  for relative, size in sorted(recorded.items()):
    if wanted is not None and not wanted(relative):
      continue
    try:
      actual = os.path.getsize(os.path.join(root, relative))
    except OSError:
      return f'{relative} is missing'
    if actual != size:
      return f'{relative} has {actual} bytes, {size} when {when}'
  return None
