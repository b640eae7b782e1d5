"""Where numba keeps compiled kernels: a directory the user can write, never the install.

By default numba caches ``@njit(cache=True)`` kernels beside their source.  A read-only
install without a writable HOME then fails on import ("cannot cache function"), and a
writable one gets files pip does not know of, so a later ``pip install -e`` leaves
``site-packages/<package>/__pycache__`` behind, a folder that shadows the editable install
as a namespace package.  This module runs first in the package's ``__init__``, before numba
is imported: unless ``NUMBA_CACHE_DIR`` is already set, it sets it to the first writable of
``$RWESIM_CACHE_DIR/numba``, ``$XDG_CACHE_HOME/rwesim/numba``, ``~/.cache/rwesim/numba``
and ``<temp dir>/rwesim-<user>/numba`` (a private folder), each with a subfolder named
by a hash of the two packages' sources (:func:`source_key`).  If none is writable, kernels
compile in memory, uncached, instead of failing.

Why the subfolder: numba keys a cached kernel on its own source file only, and a kernel
compiles in the kernels it calls from other files.  After an edit, a ``git pull`` into an
editable install or an upgrade that changes only a called kernel, the caller's stale
machine code would still load (it did, in development: a bootstrap kernel kept an old
logistic fit).  A new source hash is a new, empty folder, so everything recompiles;
folders of other source versions not used for :data:`STALE_DAYS` days are removed.

``simulator`` and ``estimators`` each hold this same file: neither package may import the
other, and ``estimators`` is usable alone (tests/test_install.py keeps the copies equal).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

ENV = "NUMBA_CACHE_DIR"
PACKAGES = ("estimators", "simulator")
STALE_DAYS = 7


def source_key() -> str:
    """16 hex digits of a hash of every ``.py`` file of both packages (those installed
    beside this one), path and content: the same sources, the same key."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha1()
    for pkg in PACKAGES:
        for f in sorted((root / pkg).rglob("*.py")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def candidates() -> list[tuple[Path, bool]]:
    """Cache directories to try, in order, each with whether it lies in a shared temp dir."""
    out = []
    if os.environ.get("RWESIM_CACHE_DIR"):
        out.append((Path(os.environ["RWESIM_CACHE_DIR"]) / "numba", False))
    if os.environ.get("XDG_CACHE_HOME"):
        out.append((Path(os.environ["XDG_CACHE_HOME"]) / "rwesim" / "numba", False))
    try:
        out.append((Path.home() / ".cache" / "rwesim" / "numba", False))
    except (RuntimeError, KeyError):  # no home directory can be determined
        pass
    try:
        tmp = tempfile.gettempdir()
    except OSError:  # no usable temporary directory
        return out
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    out.append((Path(tmp) / f"rwesim-{user}" / "numba", True))
    return out


def writable(path: Path, shared: bool = False) -> bool:
    """Create ``path`` if needed and check a file can be written there (as numba does).

    Under a shared temp dir the ``rwesim-<user>`` folder must be ours and private:
    numba's cache files are pickles, so a planted one would run code.
    """
    try:
        if shared:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            st = path.parent.stat()
            if hasattr(os, "getuid") and (
                st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            ):
                return False
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def configure() -> str | None:
    """Point numba's cache at a writable user directory; return it (None: no caching).

    Leaves a ``NUMBA_CACHE_DIR`` set by the user untouched.
    """
    if os.environ.get(ENV):
        return os.environ[ENV]
    key = source_key()
    chosen = next(
        (str(p / key) for p, shared in candidates() if writable(p, shared) and writable(p / key)),
        None,
    )
    if chosen is None:
        _compile_in_memory()
        return None
    _prune(Path(chosen))
    os.environ[ENV] = chosen
    if "numba" in sys.modules:  # numba was imported first: make it read the setting now
        from numba.core import config

        config.reload_config()
    return chosen


def _prune(current: Path) -> None:
    """Remove the folders of other source versions beside ``current`` not modified for
    :data:`STALE_DAYS` days (another version still in use touches its folder)."""
    os.utime(current)  # in use
    cutoff = time.time() - STALE_DAYS * 86400
    try:
        others = [p for p in current.parent.iterdir() if p.is_dir() and p != current]
    except OSError:
        return
    for p in others:
        try:
            if len(p.name) == 16 and p.stat().st_mtime < cutoff:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            continue


def _compile_in_memory() -> None:
    """Nothing is writable: make ``cache=True`` a no-op rather than a failure."""
    from numba.core.dispatcher import Dispatcher

    Dispatcher.enable_caching = lambda self: None  # type: ignore[method-assign]


configure()
