"""Worker processes of the study runner: how they start, dying with the parent, what each
one is fitting (so a worker that dies can be named), and per-fit deadlines.

* :func:`start_method`: ``fork`` where forking the parent is safe (Linux, one Python
  thread, numba's thread pool not started): a forked worker inherits the imported
  modules and the loaded kernels and is ready in milliseconds, where a spawned one
  re-imports numpy / scipy / pandas / numba and loads every kernel (~2 s of CPU each);
  ``spawn`` otherwise (macOS, Windows, a multi-threaded parent such as a notebook
  kernel, a parent that already ran a parallel kernel).
* :func:`init_worker` (the pool's initializer) sets one numba thread, ignores Ctrl-C (the
  parent handles it and ends the workers), and makes the worker exit when its parent
  dies: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux, plus a watchdog thread comparing
  ``os.getppid()`` with the parent's pid once a second everywhere.
* :func:`set_status` writes "fitting estimator e on replicate r of condition c" into the
  worker's slot of a shared byte array; :func:`read_status` reads every slot in the parent.
* :func:`deadline` raises :class:`FitTimeout` in the fitting thread after ``seconds``
  (``SIGALRM`` in a main thread, an asynchronous exception elsewhere).  Both interrupt
  Python code only: a numba kernel that never returns cannot be stopped this way.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

SLOT_BYTES = 200
_PR_SET_PDEATHSIG = 1
_STATUS: Any = None  # the shared byte array (in a pool worker)
_SLOT = -1


class FitTimeout(Exception):
    """A fit did not return within the study's ``fit_timeout``."""


def start_method() -> str:
    """The multiprocessing start method for a local pool created now (see above)."""
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return "spawn"
    try:
        from numba.np.ufunc import parallel
    except ImportError:  # pragma: no cover - numba is a dependency
        return "spawn"
    # numba's workqueue / OpenMP thread pools do not survive a fork
    return "spawn" if getattr(parallel, "_is_initialized", True) else "fork"


def init_worker(parent_pid: int, status: Any = None, counter: Any = None) -> None:
    """Initializer of a local pool worker (see the module docstring)."""
    import numba

    numba.set_num_threads(1)  # parallelism is across processes
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    global _STATUS, _SLOT
    if status is not None and counter is not None:
        with counter.get_lock():
            _SLOT = counter.value
            counter.value += 1
        _STATUS = status


def die_with_parent(parent_pid: int, interval: float = 1.0) -> None:
    """Exit this process when the process ``parent_pid`` (its parent) ends."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="rwesim-parent-watchdog", daemon=True).start()


def new_status(ctx: Any, slots: int) -> tuple[Any, Any]:
    """(shared byte array, slot counter) for ``slots`` workers of context ``ctx``."""
    return ctx.RawArray("c", slots * SLOT_BYTES), ctx.Value("i", 0)


def set_status(text: str) -> None:
    """Record what this worker is doing now (no-op outside a pool worker)."""
    if _STATUS is None:
        return
    b = f"{os.getpid()}\t{text}".encode()[: SLOT_BYTES - 1] + b"\0"
    start = _SLOT * SLOT_BYTES
    _STATUS[start : start + len(b)] = b


def read_status(status: Any) -> list[tuple[int, str]]:
    """(pid, last status) of every worker that has reported."""
    raw = bytes(status[:])
    out = []
    for start in range(0, len(raw), SLOT_BYTES):
        text = raw[start : start + SLOT_BYTES].split(b"\0", 1)[0].decode(errors="replace")
        if "\t" in text:
            pid, what = text.split("\t", 1)
            out.append((int(pid), what))
    return out


@contextlib.contextmanager
def deadline(seconds: float | None, what: str = "fit") -> Iterator[None]:
    """Raise :class:`FitTimeout` in this thread if the block runs longer than ``seconds``."""
    if seconds is None:
        yield
        return
    message = f"{what} did not return within fit_timeout={seconds:g} s"
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):

        def alarm(signum: int, frame: Any) -> None:
            raise FitTimeout(message)

        old = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        return
    tid, lock, state = threading.get_ident(), threading.Lock(), {"done": False}

    def fire() -> None:
        with lock:
            if not state["done"]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(tid), ctypes.py_object(FitTimeout)
                )

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["done"] = True
        timer.cancel()
