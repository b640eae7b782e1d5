"""Where numba keeps compiled kernels: a directory the user can write, never the install.

By default numba caches ``@njit(cache=True)`` kernels beside their source.  A read-only
install without a writable HOME then fails on import ("cannot cache function"), and a
writable one gets files pip does not know of, so a later ``pip install -e`` leaves
``site-packages/<package>/__pycache__`` behind, a folder that shadows the editable install
as a namespace package.  This module runs first in the package's ``__init__``, before numba
is imported: unless ``NUMBA_CACHE_DIR`` is already set, it sets it to the first writable of
``$RWESIM_CACHE_DIR/numba``, ``$XDG_CACHE_HOME/rwesim/numba``, ``~/.cache/rwesim/numba``
and ``<temp dir>/rwesim-<user>/numba`` (a private folder).  If none is writable, kernels
compile in memory, uncached, instead of failing.

``simulator`` and ``estimators`` each hold this same file: neither package may import the
other, and ``estimators`` is usable alone (tests/test_install.py keeps the copies equal).
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

ENV = "NUMBA_CACHE_DIR"


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


def writable(path: Path, shared: bool) -> bool:
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
    chosen = next((str(p) for p, shared in candidates() if writable(p, shared)), None)
    if chosen is None:
        _compile_in_memory()
        return None
    os.environ[ENV] = chosen
    if "numba" in sys.modules:  # numba was imported first: make it read the setting now
        from numba.core import config

        config.reload_config()
    return chosen


def _compile_in_memory() -> None:
    """Nothing is writable: make ``cache=True`` a no-op rather than a failure."""
    from numba.core.dispatcher import Dispatcher

    Dispatcher.enable_caching = lambda self: None  # type: ignore[method-assign]


configure()
