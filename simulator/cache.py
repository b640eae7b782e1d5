"""Where solved calibrations and computed truths are kept: shipped package data first,
then the user cache, one JSON file per key.

The user cache is the first writable of ``$RWESIM_CACHE_DIR``, ``$XDG_CACHE_HOME/rwesim``,
``~/.cache/rwesim`` and a private ``<temp dir>/rwesim-<user>`` folder: the same order as
numba's kernel cache (:mod:`simulator._numba_cache`), so a service account without a
writable home keeps its calibrations between runs too.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from . import _numba_cache

DATA = Path(__file__).resolve().parent / "data"
SHIPPED = {"calibration": DATA / "calibrations.json", "truth": DATA / "truths.json"}


def cache_dir() -> Path:
    """The user cache directory: the first writable candidate (see the module docstring).

    When none is writable, ``$RWESIM_CACHE_DIR`` or ``~/.cache/rwesim`` is returned
    anyway: writes then fail quietly and results stay in memory for the process.
    """
    for numba_dir, shared in _numba_cache.candidates():
        root = numba_dir.parent
        if _numba_cache.writable(root / "truth", shared):
            return root
    env = os.environ.get("RWESIM_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "rwesim"


@cache
def _shipped(kind: str, mtime: float) -> dict[str, Any]:
    return json.loads(SHIPPED[kind].read_text())


def read(kind: str, key: str) -> dict[str, Any] | None:
    """The stored record of ``kind`` ("calibration" or "truth") for ``key``, or None.

    An unreadable user-cache file counts as missing (it is recomputed and rewritten).
    """
    path = SHIPPED[kind]
    if path.is_file():
        record = _shipped(kind, path.stat().st_mtime).get(key)
        if record is not None:
            return record
    path = cache_dir() / kind / f"{key}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None
    return None


def write(kind: str, key: str, record: dict[str, Any]) -> None:
    """Store a record in the user cache atomically; a read-only home is not an error."""
    folder = cache_dir() / kind
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, folder / f"{key}.json")
    except OSError:
        pass  # the result stays in memory for this process
