"""Run a study: truths first, then chunks of replicates on any ``concurrent.futures`` executor.

Executors: in-process (``workers=1``), a spawn-context process pool over all cores (the
default; numba kernels are compiled in the parent first, workers run one numba thread
each), a Dask cluster (``scheduler="tcp://host:8786"``, through
``Client.get_executor()``), or any executor passed in.  Results do not depend on the
executor: replicate seeds come from ``SeedSequence(seed, spawn_key=(condition, rep))``.
``shard=(i, N)`` runs only every N-th chunk (from the i-th), for SLURM array jobs
sharing one output directory.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from .. import calibration
from .exceptions import StudyError
from .replicate import Chunk, run_chunk
from .spec import Condition, Study
from .store import Store, new_meta, open_store
from .truth import truth


@dataclass(frozen=True)
class RunReport:
    """What a call to :func:`run_study` did."""

    out_dir: Path
    tasks_total: int
    tasks_run: int
    tasks_skipped: int
    replicates_run: int
    seconds: float
    complete: bool

    @property
    def replicates_per_second(self) -> float:
        return self.replicates_run / self.seconds if self.seconds > 0 else math.nan


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> (i, N) with 0 <= i < N."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise StudyError(f"--shard={text!r} is not allowed; use i/N, e.g. 0/10") from None
    if n < 1 or not 0 <= i < n:
        raise StudyError(f"--shard={text!r} is not allowed; need 0 <= i < N")
    return i, n


def condition_meta(cond: Condition, censoring: str = "admin") -> dict[str, Any]:
    """A condition's entry in run.json, with its truths per outcome and estimand."""
    tr = truth(cond.scenario)
    estimands = ("conditional", "ATE", "ATT", "crude")
    truths = {
        outcome: {e: list(tr.estimand(outcome, e, censoring)) for e in estimands}
        for outcome in ("pfs", "os")
    }
    return {
        "index": cond.index,
        "label": cond.label,
        "scenario": cond.scenario.name,
        "fingerprint": cond.scenario.fingerprint(),
        "n": cond.n,
        "factors": cond.factors,
        "truth": truths,
        "parameters": cond.scenario.to_dict(),
    }


def plan_chunks(study: Study, conditions: list[Condition]) -> list[Chunk]:
    """Every chunk of the study, in a fixed order."""
    opts = {
        e: {k: v for k, v in study.options_for(e).items() if k != "covariates"}
        for e in study.estimators
    }
    chunks = []
    for cond in conditions:
        cal = calibration.calibrate(cond.scenario)
        covs = {e: study.covariates_for(e, cond.scenario) for e in study.estimators}
        for k, start in enumerate(range(0, study.reps, study.chunk_reps)):
            stop = min(study.reps, start + study.chunk_reps)
            chunks.append(
                Chunk(
                    cond.index,
                    k,
                    (start, stop),
                    cond.scenario,
                    cal,
                    cond.n,
                    study.seed,
                    tuple(study.estimators),
                    tuple(study.outcomes),
                    covs,
                    opts,
                )
            )
    return chunks


def _init_worker() -> None:
    import numba

    numba.set_num_threads(1)  # parallelism is across processes


@contextmanager
def _executor(
    workers: int | None, scheduler: str | None, given: Executor | None, timeout: float = 10.0
) -> Iterator[tuple[Executor | None, int]]:
    """(executor or None for in-process, parallel slots)."""
    if given is not None:
        yield given, max(1, workers or os.cpu_count() or 1)
        return
    if scheduler is not None:
        with _dask(scheduler, timeout) as (ex, slots):
            yield ex, slots
        return
    n = workers or os.cpu_count() or 1
    if n == 1:
        yield None, 1
        return
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init_worker) as ex:
        yield ex, n


@contextmanager
def _dask(address: str, timeout: float) -> Iterator[tuple[Executor, int]]:
    try:
        from distributed import Client
    except ImportError:
        raise StudyError("--scheduler needs dask.distributed: pip install 'rwesim[dask]'") from None
    try:
        client = Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as exc:
        raise StudyError(f"cannot reach the Dask scheduler at {address!r}: {exc}") from None
    try:
        slots = max(1, sum(client.nthreads().values()))
        yield client.get_executor(), slots
    finally:
        client.close()


def run_study(
    study: Study,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    executor: Executor | None = None,
    shard: tuple[int, int] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    scheduler_timeout: float = 10.0,
) -> RunReport:
    """Run (or resume) a study into ``out_dir``.

    Parameters
    ----------
    study : Study
    out_dir : path
        Results directory (created if needed); see :mod:`simulator.study.store`.
    workers : int, optional
        Processes of the local pool (default all cores); 1 runs in this process.
    scheduler : str, optional
        Address of a Dask scheduler; replicates then run on that cluster.
    executor : concurrent.futures.Executor, optional
        Any executor (takes precedence over ``workers`` / ``scheduler``).
    shard : (i, N), optional
        Run only chunks i, i + N, i + 2N, ...
    resume : bool
        Continue an unfinished run in ``out_dir`` (finished chunks are kept).
    overwrite : bool
        Discard a previous run in ``out_dir``.
    progress : bool, optional
        Progress bar (default: when stderr is a terminal).
    log : callable, optional
        Receives one-line status messages (default: stderr).
    scheduler_timeout : float
        Seconds to wait for the Dask scheduler before giving up.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise StudyError(f"workers={workers!r} is not allowed; it must be a positive integer")
    spec = json.loads(json.dumps(study.to_dict()))
    store = open_store(out_dir, spec, resume=resume, overwrite=overwrite)
    conditions = study.conditions()
    with _executor(workers, scheduler, executor, scheduler_timeout) as (ex, slots):
        if ex is not None:
            # compile (or load) every kernel here first, then let the workers start and
            # load theirs while this process computes the truths
            warm_up()
            warming = [ex.submit(warm_up) for _ in range(slots)]
        log(
            f"{study.name}: {len(conditions)} condition(s), {study.reps} replicates each; "
            "truths ..."
        )
        metas = [condition_meta(c, study.truth_censoring) for c in conditions]
        chunks = plan_chunks(study, conditions)
        _start_or_check_meta(store, spec, metas, len(chunks))
        todo = _select(chunks, shard, store.done())
        start = time.perf_counter()
        reps = sum(c.reps[1] - c.reps[0] for c in todo)
        log(f"running {len(todo)} of {len(chunks)} chunks ({reps} replicates) into {store.root}")
        if ex is not None:
            wait(warming)
        _execute(todo, ex, slots, store, _progress_bar(progress, reps))
    complete = store.done() >= {(c.condition, c.chunk) for c in chunks}
    if complete:
        meta = store.read_meta()
        meta["status"] = "complete"
        meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        store.write_meta(meta)
    elapsed = time.perf_counter() - start
    return RunReport(
        store.root, len(chunks), len(todo), len(chunks) - len(todo), reps, elapsed, complete
    )


def _start_or_check_meta(store: Store, spec, metas, n_tasks: int) -> None:
    if not store.meta_path.exists():
        store.write_meta(new_meta(spec, metas, n_tasks))
        return
    old = {c["index"]: c["fingerprint"] for c in store.read_meta()["conditions"]}
    for m in metas:
        if old.get(m["index"]) != m["fingerprint"]:
            raise StudyError(
                f"condition {m['label']!r} has changed since the run started (a scenario "
                "definition differs); start a new run in another directory"
            )


def _select(chunks: list[Chunk], shard, done) -> list[Chunk]:
    picked = chunks if shard is None else chunks[shard[0] :: shard[1]]
    return [c for c in picked if (c.condition, c.chunk) not in done]


def warm_up() -> None:
    """Run one tiny replicate of every built-in estimator: compiles (or loads from the
    numba cache) every kernel a study uses, so workers never compile concurrently."""
    study = Study(name="warm-up", reps=1, chunk_reps=1, sample_sizes=(200,))
    chunk = plan_chunks(study, study.conditions())[0]
    run_chunk(chunk)


def _execute(todo: list[Chunk], ex: Executor | None, slots: int, store: Store, bar) -> None:
    with bar as progress:
        task = progress.add_task("replicates", total=sum(c.reps[1] - c.reps[0] for c in todo))

        def finished(chunk: Chunk, rows) -> None:
            store.write_part(chunk.condition, chunk.chunk, rows)
            progress.advance(task, chunk.reps[1] - chunk.reps[0])

        if ex is None:
            for chunk in todo:
                finished(chunk, run_chunk(chunk))
            return
        pending: dict[Future, Chunk] = {}
        queue = list(reversed(todo))
        try:
            while queue or pending:
                while queue and len(pending) < 2 * slots:
                    c = queue.pop()
                    pending[ex.submit(run_chunk, c)] = c
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    finished(pending.pop(fut), fut.result())
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def advance(self, *args, **kwargs) -> None:
        return None


class _RateColumn(ProgressColumn):
    """Replicates per second."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("  -  rep/s" if speed is None else f"{speed:7.1f} rep/s")


def _progress_bar(show: bool | None, total: int):
    if show is None:
        show = sys.stderr.isatty()
    if not show or total == 0:
        return _NoProgress()
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
