"""Run a study: truths first, then chunks of replicates on any ``concurrent.futures`` executor.

Executors: in-process (``workers=1``), a process pool over all cores (the default;
numba kernels are compiled in the parent first, workers are forked from it where that
is safe, else spawned, see :func:`simulator.study.workers.start_method`, and run one
numba thread each), a Dask cluster (``scheduler="tcp://host:8786"``, through
``Client.get_executor()``), or any executor passed in.  Results do not depend on the
executor: replicate seeds come from ``SeedSequence(seed, spawn_key=(condition, rep))``.
``shard=(i, N)`` runs only every N-th chunk (from the i-th), for SLURM array jobs
sharing one output directory.

Order of work: every check that can fail on the user's input runs first (the spec, the
output directory's claim, resume compatibility, writability), then the executor starts,
then the truths, then the replicates.  Failures on the way:

* a worker process that dies (killed, out of memory, an estimator that crashes it):
  the chunks that finished are saved and a :class:`StudyError` says so ("use
  --resume"), naming what the dead worker was fitting where it can;
* Ctrl-C: workers ignore it (no tracebacks from them) and are ended by the parent;
* the parent killed (``kill -9``, SIGTERM): workers exit by themselves
  (:mod:`simulator.study.workers`);
* every fit of one estimator failed: the results are kept and a :class:`StudyError`
  names the most common error.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
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

from estimators.estimands import ESTIMANDS, SCORED_AGAINST
from estimators.registry import (
    available_estimators,
    get_estimator,
    import_path_of,
    is_import_path,
)

from .. import calibration
from ..exact import RMST_HORIZONS, SURVIVAL_HORIZONS
from . import workers as W
from .exceptions import StudyError
from .kinds import is_kind
from .replicate import Chunk, run_chunk
from .spec import OUTCOMES, Condition, Study
from .store import Store, open_store
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


def condition_meta(
    cond: Condition,
    censoring: str = "admin",
    effects: tuple[tuple[str, float | None], ...] = (),
) -> dict[str, Any]:
    """A condition's entry in run.json, with its truths: one record per outcome, estimand
    and measure (estimands scored against another's truth, like ``crude``, have none).

    ``effects``: the ``(measure, horizon)`` pairs besides the log-HR the study's
    estimators report (:meth:`Study.effect_measures`); horizons the shipped truths do
    not hold are computed by the exact engine.
    """
    rmst = {h for m, h in effects if m == "rmst_diff"}
    surv = {h for m, h in effects if m == "surv_diff"}
    outcomes: tuple[str, ...] = tuple(OUTCOMES)
    if is_kind(cond.scenario):  # a scenario kind computes its own truths
        tr = cond.scenario.truth()
        outcomes = tuple(cond.scenario.outcomes)
        effects = tuple(dict.fromkeys((*effects, *_kind_effects(cond))))
    elif rmst <= set(RMST_HORIZONS) and surv <= set(SURVIVAL_HORIZONS):
        tr = truth(cond.scenario)
    else:
        tr = truth(
            cond.scenario,
            rmst_horizons=tuple(sorted(rmst | set(RMST_HORIZONS))),
            survival_horizons=tuple(sorted(surv | set(SURVIVAL_HORIZONS))),
        )
    truths = []
    for outcome in outcomes:
        for estimand in ESTIMANDS:
            if estimand in SCORED_AGAINST:
                continue
            for measure, horizon in (("log_hr", None), *effects):
                try:
                    theta, mcse = tr.estimand(outcome, estimand, censoring, measure, horizon)
                except ValueError:  # an estimand this truth engine does not compute
                    continue
                truths.append(
                    {
                        "outcome": outcome,
                        "estimand": estimand,
                        "measure": measure,
                        "horizon": horizon,
                        "theta": theta,
                        "mcse": mcse,
                    }
                )
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


def _kind_effects(cond: Condition) -> tuple[tuple[str, float | None], ...]:
    """The (measure, horizon) pairs of a scenario kind's own horizon (``horizon`` in its
    parameters), so that estimators run with their defaults find their truth."""
    h = cond.scenario.to_dict().get("horizon")
    return () if h is None else (("rmst_diff", float(h)), ("surv_diff", float(h)))


def _kind_options(
    study: Study, cond: Condition, opts: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """A scenario kind's condition-specific options (``kind.options``, keyed by the base
    estimator) under the study's own, for each of the study's estimators."""
    own = cond.scenario.options
    return {e: {**own.get(study.base_of(e), {}), **opts[e]} for e in study.estimators}


def plan_chunks(
    study: Study, conditions: list[Condition], segments: list[list[int]] | None = None
) -> list[Chunk]:
    """Every chunk of the study, in a fixed order.

    ``segments``: replicate ranges ``[start, stop)`` added run by run (run.json's
    ``rep_segments``; default one segment ``[0, reps)``); each is cut into chunks of
    ``chunk_reps``, numbered on across segments.
    """
    segments = segments or [[0, study.reps]]
    opts = {
        e: {k: v for k, v in study.options_for(e).items() if k != "covariates"}
        for e in study.estimators
    }
    refs = user_references(study)
    runs = study.runs()
    chunks = []
    for cond in conditions:
        cal = None if is_kind(cond.scenario) else calibration.calibrate(cond.scenario)
        covs = {e: study.covariates_for(e, cond.scenario) for e in study.estimators}
        cond_opts = _kind_options(study, cond, opts) if is_kind(cond.scenario) else opts
        k = 0
        for first, last in segments:
            for start in range(first, last, study.chunk_reps):
                stop = min(last, start + study.chunk_reps)
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
                        cond_opts,
                        study.fit_timeout,
                        {e: study.base_of(e) for e in study.estimators if e in study.variants},
                        {e: study.estimand_of(e) for e in study.estimators},
                        refs,
                        runs,
                    )
                )
                k += 1
    return chunks


def user_references(study: Study) -> dict[str, str]:
    """Registered estimators of the study that are not this package's, with the import
    path of each one's function: workers in other processes (spawned, Dask) import it
    there, where the registration made in this process does not exist."""
    refs = {}
    for e in study.estimators:
        base = study.base_of(e)
        if is_import_path(base) and base not in available_estimators():
            continue
        func = get_estimator(base).func
        if _ours(func):
            continue
        path = import_path_of(func)
        if path is not None:
            refs[base] = path
    return refs


def _builtin(name: str) -> bool:
    """True when ``name`` is an estimator of this package (False also when it cannot be
    looked up in this process: a worker reports that per fit, in the rows)."""
    if is_import_path(name) and name not in available_estimators():
        return False
    try:
        return _ours(get_estimator(name).func)
    except Exception:
        return False


def _ours(func: Any) -> bool:
    module = getattr(func, "__module__", None) or ""
    return module == "estimators" or module.startswith("estimators.")


def check_shippable(study: Study) -> None:
    """Refuse, before any replicate runs, a registered estimator that workers in other
    processes cannot rebuild: one whose function has no import path (defined in
    ``__main__``, a notebook, a lambda or a local function).  Checked for Dask and any
    given executor, and for a local pool whose workers are spawned; forked workers
    inherit the registration, and ``workers=1`` runs in this process."""
    refs = user_references(study)
    for e in study.estimators:
        base = study.base_of(e)
        if base in refs or (is_import_path(base) and base not in available_estimators()):
            continue
        func = get_estimator(base).func
        if _ours(func):
            continue
        where = getattr(func, "__module__", "?")
        raise StudyError(
            f"estimator {base!r} is registered in this process only (its function "
            f"{getattr(func, '__qualname__', func)!r} lives in {where!r}), so worker processes "
            "cannot run it; put the function in a module and name it by import path "
            "('package.module:function' in the study's estimators, or rwesim run -e), or "
            "run with workers=1 (--workers 1)"
        )


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Processes started inside inherit SIGINT ignored (no KeyboardInterrupt in workers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@dataclass
class _Pool:
    """The executor of a run, with what is needed to report a dead worker."""

    executor: Executor | None
    slots: int
    status: Any = None
    processes: dict[int, Any] = field(default_factory=dict)
    warmed: bool = False  # this process's kernels loaded before the pool was made

    def dead_worker(self) -> str:
        """What the worker that died was doing, as far as can be told."""
        if self.status is None:
            return ""
        for proc in self.processes.values():  # the pool is ending the others: let it
            proc.join(2.0)
        doing = dict(W.read_status(self.status))
        fitting = []
        for pid, what in doing.items():
            state, est, cond, rep, outcome = (what.split("\t") + [""] * 5)[:5]
            proc = self.processes.get(pid)
            code = None if proc is None else proc.exitcode
            if code == -signal.SIGTERM:  # ended by the pool after the death
                continue
            if state == "fitting":
                fitting.append(
                    f"while fitting estimator {est!r} (condition {cond}, replicate {rep}, "
                    f"{outcome}){'' if code is None else f', exit code {code}'}"
                )
            elif state == "simulating":
                fitting.append(f"while simulating replicate {rep} of condition {cond}")
        return " " + "; ".join(sorted(set(fitting))) if fitting else ""


@contextmanager
def _executor(
    workers: int | None,
    scheduler: str | None,
    given: Executor | None,
    timeout: float = 10.0,
    prepare: Callable[[], None] | None = None,
    study: Study | None = None,
) -> Iterator[_Pool]:
    """The run's executor.  A local pool runs ``prepare`` (the parent's warm-up) first,
    then picks its start method: a warm-up that started numba's thread pool (a parallel
    kernel, e.g. the bootstrap's) makes fork unsafe, so the workers are spawned."""
    if given is not None:
        yield _Pool(given, max(1, workers or os.cpu_count() or 1))
        return
    if scheduler is not None:
        with _dask(scheduler, timeout) as (ex, slots):
            yield _Pool(ex, slots)
        return
    n = workers or os.cpu_count() or 1
    if n == 1:
        yield _Pool(None, 1)
        return
    if prepare is not None:
        prepare()
    method = W.start_method()
    if method != "fork" and study is not None:  # forked workers inherit registrations
        check_shippable(study)
    ctx = mp.get_context(method)
    status, counter = W.new_status(ctx, n)
    ex = ProcessPoolExecutor(
        max_workers=n,
        mp_context=ctx,
        initializer=W.init_worker,
        initargs=(os.getpid(), status, counter),
    )
    pool = _Pool(ex, n, status, warmed=prepare is not None)
    try:
        yield pool
    except BaseException:
        # Ctrl-C, a dead worker, any error: end the workers now instead of waiting for
        # their chunks (finished chunks are already saved; parts are atomic)
        procs = {**pool.processes, **(getattr(ex, "_processes", None) or {})}
        ex.shutdown(wait=False, cancel_futures=True)
        for p in procs.values():
            if p.is_alive():
                p.terminate()
        for p in procs.values():
            p.join(5)
        raise
    else:
        ex.shutdown(wait=True)


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
    """Run (or resume, or extend) a study into ``out_dir``.

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
        Continue an unfinished run in ``out_dir`` (finished chunks are kept), or add
        replicates to a run of the same study with fewer ``reps``.
    overwrite : bool
        Discard a previous run in ``out_dir`` (its parts and plots).
    progress : bool, optional
        Progress bar (default: when stderr is a terminal).
    log : callable, optional
        Receives one-line status messages (default: stderr).
    scheduler_timeout : float
        Seconds to wait for the Dask scheduler before giving up.

    Raises
    ------
    StudyError
        Bad arguments, an unusable output directory (:class:`StoreError`), a worker
        process that died (finished chunks kept), or an estimator whose every fit failed
        (results kept).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise StudyError(f"workers={workers!r} is not allowed; it must be a positive integer")
    if not isinstance(study, Study):
        raise StudyError(f"study={study!r} is not allowed; give a Study")
    if executor is not None or scheduler is not None:
        check_shippable(study)
    spec = json.loads(json.dumps(study.to_dict()))
    conditions = study.conditions()
    fingerprints = {c.index: c.scenario.fingerprint() for c in conditions}
    store = open_store(
        out_dir, spec, resume=resume, overwrite=overwrite, shard=shard, fingerprints=fingerprints
    )
    with store:
        try:
            with _executor(
                workers, scheduler, executor, scheduler_timeout, lambda: warm_up(study), study
            ) as pool:
                return _run(study, spec, conditions, store, pool, shard, progress, log)
        except BaseException:
            if store.fresh:  # nothing to resume: leave the directory as it was
                store.discard_if_unused()
            raise


def _run(study, spec, conditions, store: Store, pool: _Pool, shard, progress, log) -> RunReport:
    ex = pool.executor
    if ex is not None:
        # compile (or load) every kernel here first, then let the workers start and
        # load theirs while this process computes the truths
        if not pool.warmed:
            warm_up(study)
        with _sigint_ignored():
            warming = [ex.submit(warm_up, study) for _ in range(pool.slots)]
        pool.processes = dict(getattr(ex, "_processes", None) or {})
    log(f"{study.name}: {len(conditions)} condition(s), {study.reps} replicates each; truths ...")
    metas = []
    for i, c in enumerate(conditions):
        metas.append(condition_meta(c, study.truth_censoring, study.effect_measures()))
        if len(conditions) > 1:
            log(f"  truths {i + 1}/{len(conditions)}: {c.label}")
    segments = store.read_meta().get("rep_segments")
    chunks = plan_chunks(study, conditions, segments)
    with store.meta_lock():
        meta = store.read_meta()
        if not meta.get("conditions"):
            meta["conditions"] = metas
        meta["tasks_total"] = len(chunks)
        store.write_meta(meta)
    scan = store.scan()
    for path, why in scan.unreadable:
        log(f"note: {path.name} is unreadable ({why}); its chunk runs again")
    todo = _select(chunks, shard, scan.done)
    start = time.perf_counter()
    reps = sum(c.reps[1] - c.reps[0] for c in todo)
    log(f"running {len(todo)} of {len(chunks)} chunks ({reps} replicates) into {store.root}")
    if ex is not None:
        wait(warming)
        try:
            for f in warming:
                f.result()  # a worker that cannot start is an error here, not later
        except BrokenProcessPool:
            raise StudyError(
                f"a worker process died while starting{pool.dead_worker()}; nothing was run "
                f"(is the machine out of memory?); retry, or use --workers 1"
            ) from None
    tally = _execute(todo, pool, store, _progress_bar(progress, reps))
    complete = store.done() >= {(c.condition, c.chunk) for c in chunks}
    if complete:
        store.update_meta(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    elapsed = time.perf_counter() - start
    _all_failed(tally, store.root)
    return RunReport(
        store.root, len(chunks), len(todo), len(chunks) - len(todo), reps, elapsed, complete
    )


def _select(chunks: list[Chunk], shard, done) -> list[Chunk]:
    picked = chunks if shard is None else chunks[shard[0] :: shard[1]]
    return [c for c in picked if (c.condition, c.chunk) not in done]


def warm_up(study: Study | None = None) -> None:
    """Run one tiny replicate (200 patients) of every built-in estimator, and of
    ``study``'s estimators and variants with their options: compiles (or loads from the
    numba cache) every kernel the study uses, so workers never compile concurrently (a
    bootstrap variant's kernels, say, only when a study has one)."""
    runs = [Study(name="warm-up", reps=1, chunk_reps=1, sample_sizes=(200,))]
    # the study's estimators of this package (a user's own are not run here: they may be
    # slow or have effects; their kernels, if any, load in each worker)
    ours = tuple(
        e
        for e in (study.estimators if study is not None else ())
        if e not in runs[0].estimators and _builtin(study.base_of(e))
    )
    if ours:
        runs.append(
            Study(
                name="warm-up",  # the built-in scenario: same kernels, no calibration
                reps=1,
                chunk_reps=1,
                sample_sizes=(200,),
                estimators=ours,
                variants={k: v for k, v in study.variants.items() if k in ours},
                estimator_options={k: v for k, v in study.estimator_options.items() if k in ours},
            )
        )
    for s in runs:
        run_chunk(plan_chunks(s, s.conditions()[:1])[0])


@dataclass
class _Tally:
    """Fits run and failed per estimator, with the errors (for the all-failed check)."""

    fits: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    errors: dict[str, Counter] = field(default_factory=dict)

    def add(self, rows) -> None:
        # per fit of the study (estimator, measure, horizon): a horizon beyond an
        # outcome's follow-up fails every time even where the estimator's others do not
        at = rows["horizon"].map(lambda h: f" at {h:g} months" if h == h else "")
        effect = (" (" + rows["measure"] + at + ")").where(rows["measure"] != "log_hr", "")
        for key, g in rows.groupby([rows["estimator"], effect], sort=False):
            self.fits[key] += len(g)
            bad = g["error"][g["error"] != ""]
            self.failed[key] += len(bad)
            if len(bad):
                self.errors.setdefault(key, Counter()).update(bad.tolist())


def _all_failed(tally: _Tally, root: Path) -> None:
    dead = [e for e, n in tally.fits.items() if n and tally.failed[e] == n]
    if not dead:
        return
    lines = []
    for key in dead:
        message, count = tally.errors[key].most_common(1)[0]
        est, effect = key
        lines.append(f"{est!r}{effect} ({count} of {tally.fits[key]} with: {message})")
    raise StudyError(
        "every fit of estimator "
        + "; ".join(lines)
        + f" failed in this run; the results are kept in {root}"
    )


def _execute(todo: list[Chunk], pool: _Pool, store: Store, bar) -> _Tally:
    tally = _Tally()
    ex = pool.executor
    with bar as progress:
        task = progress.add_task("replicates", total=sum(c.reps[1] - c.reps[0] for c in todo))

        def finished(chunk: Chunk, rows) -> None:
            store.write_part(chunk.condition, chunk.chunk, rows, chunk.reps)
            tally.add(rows)
            progress.advance(task, chunk.reps[1] - chunk.reps[0])

        if ex is None:
            for chunk in todo:
                finished(chunk, run_chunk(chunk))
            return tally
        pending: dict[Future, Chunk] = {}
        queue = list(reversed(todo))
        broken: BaseException | None = None
        try:
            while (queue and broken is None) or pending:
                while queue and broken is None and len(pending) < 2 * pool.slots:
                    c = queue.pop()
                    try:
                        pending[ex.submit(run_chunk, c)] = c
                    except BrokenProcessPool as exc:
                        broken = exc
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    chunk = pending.pop(fut)
                    try:
                        rows = fut.result()
                    except BrokenProcessPool as exc:
                        broken = exc  # save every chunk that did finish, then report
                        continue
                    finished(chunk, rows)
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
        if broken is not None:
            raise StudyError(
                f"a worker process died{pool.dead_worker()}; finished results are kept in "
                f"{store.root}; use --resume to continue"
            ) from None
    return tally


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
