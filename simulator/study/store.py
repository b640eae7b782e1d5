"""Results store: a directory holding ``run.json`` and one Parquet part per finished chunk.

Layout::

    DIR/run.json                      study spec and identity, conditions with their
                                      truths, replicate segments, package versions, status
    DIR/parts/c0003-k00017.parquet    replicates of chunk 17 of condition 3 (tidy rows:
                                      replicate x outcome x estimator; the columns of
                                      :mod:`simulator.study.record`)
    DIR/plots/                        figures written by ``rwesim plot`` (default folder)
    DIR/.rwesim.lock                  held (``fcntl`` lock) by the run writing here

Integrity rules:

* **Claim.** A run claims the directory before any work: an exclusive lock for the whole
  run (a shared one plus a per-shard lock for ``--shard i/N``, so shards of one study can
  share a directory), released when the process ends however it ends.  A second run
  into a claimed directory gets a :class:`StoreError` at once.  ``run.json`` is written at
  claim time, so a concurrent run of a *different* study (another seed, say) is refused.
* **Identity.** Every part carries the study identity (a hash of the whole spec except
  ``reps``) in its Parquet metadata; a part with another identity (copied from another
  study) is refused on resume and on read, never merged.
* **Atomic parts.** A part is written to a temporary name and renamed into place.  A
  part that cannot be read (truncated, corrupt) is not counted as done: ``--resume``
  runs its chunk again.
* **Adding replicates.** ``--resume`` with the same spec but a larger ``reps`` (same
  ``chunk_reps``) runs only the new replicates: they form a new segment of chunks
  (``rep_segments`` in run.json), and the rows equal a fresh run's.
* **Versions.** This is results format 2 (the measure-generic record).  Format 1
  directories (rwesim 0.1) are read (``log_hr`` becomes ``estimate``, ``measure =
  "log_hr"``) but cannot be resumed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import record
from .exceptions import StoreError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

FORMAT = "rwesim-results"
FORMAT_VERSION = record.FORMAT_VERSION
PART = re.compile(r"^c(\d{4})-k(\d{5})\.parquet$")
SCHEMA = record.SCHEMA
LOCK = ".rwesim.lock"
_META_LOCK = ".rwesim.meta.lock"
_IDENTITY_KEY = b"rwesim.study"
_PART_KEY = b"rwesim.part"
_PACKAGES = ("rwesim", "numpy", "scipy", "numba", "pandas", "pyarrow")


def part_name(condition: int, chunk: int) -> str:
    return f"c{condition:04d}-k{chunk:05d}.parquet"


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in _PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "?"
    return out


def study_identity(spec: dict[str, Any]) -> str:
    """Hash of a study spec (the ``[study]`` dict) without ``reps``: what parts are stamped
    with.  Replicate ``r`` of condition ``c`` gives the same rows for every ``reps``."""
    body = {k: v for k, v in spec.items() if k != "reps"}
    text = json.dumps(body, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass
class PartCheck:
    """What :meth:`Store.scan` found on disk."""

    done: set[tuple[int, int]] = field(default_factory=set)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def _table(rows: pd.DataFrame) -> pa.Table:
    """The rows as an Arrow table of :data:`SCHEMA`, column by column (a tenth of the
    time of ``Table.from_pandas`` for a chunk's few hundred rows; reads back the same)."""
    return pa.Table.from_arrays(
        [pa.array(rows[f.name].to_numpy(), type=f.type, from_pandas=True) for f in SCHEMA],
        schema=SCHEMA,
    )


@dataclass
class Store:
    """An open results directory (read-only unless claimed by :func:`open_store`)."""

    root: Path
    _locks: list[int] = field(default_factory=list, repr=False)
    created: bool = field(default=False, repr=False)  # this run made the directory
    fresh: bool = field(default=False, repr=False)  # this run wrote a new run.json
    _identity: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    @property
    def meta_path(self) -> Path:
        return self.root / "run.json"

    @property
    def parts(self) -> Path:
        return self.root / "parts"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    # ---- metadata ----------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{self.meta_path} is unreadable: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise StoreError(f"{self.meta_path} is not an rwesim results file")
        v = meta.get("format_version")
        if v not in record.READABLE_VERSIONS:
            raise StoreError(
                f"{self.root} holds results in format version {v!r}; this rwesim reads "
                f"format versions {list(record.READABLE_VERSIONS)} (upgrade rwesim)"
            )
        return meta

    def write_meta(self, meta: dict[str, Any]) -> None:
        self._identity = None
        tmp = self.root / f".run.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(meta, indent=1, default=_jsonable))
        os.replace(tmp, self.meta_path)

    @contextlib.contextmanager
    def meta_lock(self):
        """Exclusive lock for a read-modify-write of run.json (blocks briefly)."""
        if fcntl is None:  # pragma: no cover
            yield
            return
        fd = os.open(self.root / _META_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update_meta(self, **changes: Any) -> dict[str, Any]:
        """Re-read run.json, apply ``changes`` and write it back (under the meta lock)."""
        with self.meta_lock():
            meta = self.read_meta()
            meta.update(changes)
            self.write_meta(meta)
        return meta

    @property
    def identity(self) -> str | None:
        """The study identity parts must carry (None for a format-1 directory)."""
        if self._identity is None:
            self._identity = self.read_meta().get("identity") or ""
        return self._identity or None

    # ---- parts -------------------------------------------------------------------------
    def _files(self) -> list[Path]:
        if not self.parts.is_dir():
            return []
        return sorted(p for p in self.parts.iterdir() if PART.match(p.name))

    def scan(self) -> PartCheck:
        """Parts on disk whose footer reads and whose identity is this study's.

        Unreadable parts are listed (not done); a part of another study is an error.
        """
        meta = self.read_meta() if self.meta_path.exists() else {}
        identity = meta.get("identity")
        study = meta.get("study") or {}
        per_rep = len(study.get("outcomes", ())) * len(study.get("estimators", ()))
        out = PartCheck()
        for p in self._files():
            try:
                footer = pq.read_metadata(p)
            except (OSError, pa.ArrowException) as exc:
                out.unreadable.append((p, f"{type(exc).__name__}: {exc}"))
                continue
            md = footer.metadata or {}
            self._check_identity(p, md, identity)
            m = PART.match(p.name)
            key = (int(m.group(1)), int(m.group(2)))
            if identity is not None:
                part = json.loads(md.get(_PART_KEY, b"{}"))
                if (part.get("condition"), part.get("chunk")) != key:
                    raise StoreError(
                        f"{p} holds chunk {part.get('chunk')} of condition "
                        f"{part.get('condition')}: it was renamed; remove it"
                    )
                if "rows" in part or ("reps" in part and per_rep):
                    # the rows written (a study with measures fits some estimators more
                    # than once per replicate); older parts: replicates x outcomes x
                    # estimators
                    expected = part.get("rows") or (part["reps"][1] - part["reps"][0]) * per_rep
                    if footer.num_rows != expected:
                        out.unreadable.append(
                            (p, f"{footer.num_rows} rows where {expected} were written")
                        )
                        continue
            out.done.add(key)
        return out

    def done(self) -> set[tuple[int, int]]:
        """(condition, chunk) of every readable part of this study on disk."""
        return self.scan().done

    def _check_identity(self, path: Path, md: dict[bytes, bytes], identity: str | None) -> None:
        if identity is None:  # format 1: parts carry no identity
            return
        theirs = md.get(_IDENTITY_KEY, b"").decode() or None
        if theirs != identity:
            raise StoreError(
                f"{path} belongs to another study (identity {theirs or 'none'}, this study "
                f"{identity}); it was not written by this run: remove it"
            )

    def write_part(
        self, condition: int, chunk: int, rows: pd.DataFrame, reps: tuple[int, int] | None = None
    ) -> Path:
        """Write one chunk's rows atomically, stamped with the study identity."""
        self.parts.mkdir(parents=True, exist_ok=True)
        table = _table(rows)
        part = {"condition": condition, "chunk": chunk, "format_version": FORMAT_VERSION}
        if reps is not None:
            part["reps"] = list(reps)
        part["rows"] = table.num_rows
        table = table.replace_schema_metadata(
            {
                **(table.schema.metadata or {}),
                _IDENTITY_KEY: (self.identity or "").encode(),
                _PART_KEY: json.dumps(part).encode(),
            }
        )
        final = self.parts / part_name(condition, chunk)
        tmp = self.parts / f".{final.name}.{os.getpid()}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, final)
        return final

    def read_results(self) -> pd.DataFrame:
        """Every finished row (the record's columns), sorted by condition, replicate,
        outcome, estimator, measure, horizon (:data:`record.ROW_KEY`)."""
        meta = self.read_meta()
        version_, identity = meta["format_version"], meta.get("identity")
        files = self._files()
        if not files:
            return SCHEMA.empty_table().to_pandas()
        frames = []
        for f in files:
            try:
                t = pq.read_table(f)
            except (OSError, pa.ArrowException) as exc:
                raise StoreError(
                    f"{f} is not a readable Parquet file ({exc}); `rwesim run --resume` "
                    "redoes its chunk"
                ) from None
            self._check_identity(f, t.schema.metadata or {}, identity)
            expected = SCHEMA if version_ == FORMAT_VERSION else None
            if expected is not None and not t.schema.equals(expected, check_metadata=False):
                raise StoreError(f"{f} does not have the rwesim results schema")
            frames.append(record.upgrade(t.to_pandas(), version_))
        df = pd.concat(frames, ignore_index=True)
        return df.sort_values(list(record.ROW_KEY), ignore_index=True, kind="stable")

    def truths(self) -> pd.DataFrame:
        """The truths of run.json: columns :data:`record.TRUTH_COLUMNS` (horizon NaN when
        the measure has none)."""
        rows = []
        for c in self.read_meta()["conditions"]:
            t = c["truth"]
            if isinstance(t, dict):  # format 1: {outcome: {estimand: [theta, mcse]}}
                for outcome, by_estimand in t.items():
                    for estimand, (theta, mcse) in by_estimand.items():
                        rows.append(
                            (c["index"], outcome, estimand, "log_hr", math.nan, theta, mcse)
                        )
            else:
                for r in t:
                    h = math.nan if r.get("horizon") is None else float(r["horizon"])
                    rows.append(
                        (
                            c["index"],
                            r["outcome"],
                            r["estimand"],
                            r["measure"],
                            h,
                            r["theta"],
                            r["mcse"],
                        )
                    )
        return pd.DataFrame(rows, columns=list(record.TRUTH_COLUMNS))

    def check_foreign(self) -> None:
        """Refuse a directory holding Parquet files that are not this store's parts."""
        for p in self.root.rglob("*.parquet"):
            if p.parent != self.parts or not PART.match(p.name):
                raise StoreError(
                    f"{self.root} holds a Parquet file that is not an rwesim result part "
                    f"({p.relative_to(self.root)}); use an empty or rwesim output directory"
                )

    # ---- the claim ---------------------------------------------------------------------
    def _lock(self, name: str, shared: bool, holder: str) -> None:
        if fcntl is None:  # pragma: no cover - no advisory locks: best effort
            return
        path = self.root / name
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"output directory {self.root} is not writable: {exc}") from None
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError:
            other = _read_small(path)
            os.close(fd)
            raise StoreError(
                f"another rwesim run is writing to {self.root}"
                + (f" ({other})" if other else "")
                + "; wait for it to finish or choose another directory"
            ) from None
        if not shared:
            os.ftruncate(fd, 0)
            os.write(fd, holder.encode())
        self._locks.append(fd)

    def release(self) -> None:
        """Release the claim (also released when the process exits)."""
        while self._locks:
            os.close(self._locks.pop())

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def discard_if_unused(self) -> None:
        """Undo a fresh claim that produced nothing (no parts): remove run.json and the
        lock files, and the directory itself if this run created it."""
        if self._files():
            return
        for name in ("run.json", LOCK, _META_LOCK):
            with contextlib.suppress(OSError):
                (self.root / name).unlink()
        for name in os.listdir(self.root) if self.root.is_dir() else []:
            if name.startswith(".rwesim-shard-"):
                with contextlib.suppress(OSError):
                    (self.root / name).unlink()
        with contextlib.suppress(OSError):
            self.parts.rmdir()
        if self.created:
            with contextlib.suppress(OSError):
                self.root.rmdir()


def _read_small(path: Path) -> str:
    try:
        return path.read_text()[:200].strip()
    except OSError:
        return ""


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, tuple):
        return list(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(diffs[:4]) + ("; ..." if len(diffs) > 4 else "")


def open_store(
    root: str | Path,
    spec: dict[str, Any],
    *,
    resume: bool,
    overwrite: bool,
    shard: tuple[int, int] | None = None,
    fingerprints: dict[int, str] | None = None,
) -> Store:
    """Claim ``root`` for a run of ``spec`` (the study dict), enforcing the resume rules.

    * empty / new directory: a fresh run (run.json is written now, before any work);
    * existing run of the same study: needs ``resume`` (or ``overwrite``);
    * a finished run: refused unless ``overwrite`` (parts and plots are then deleted), or
      ``resume`` with a larger ``reps`` (the new replicates are added);
    * a different study (any field of the spec), a changed scenario (``fingerprints``:
      condition index -> scenario fingerprint), foreign Parquet files, an unreadable
      run.json, a format-1 directory or a directory claimed by another run: refused.

    The returned store holds the claim until :meth:`Store.release` (or process exit).
    """
    store = Store(Path(root))
    if store.root.exists() and not store.root.is_dir():
        raise StoreError(f"output {root} exists and is not a directory")
    # ``created`` must be decided atomically: two runs racing for a new directory both see
    # it missing, and the one that then loses the claim must not remove the winner's.
    store.created = False
    try:
        store.root.parent.mkdir(parents=True, exist_ok=True)
        try:
            store.root.mkdir()
            store.created = True
        except FileExistsError:
            pass
    except OSError as exc:
        raise StoreError(f"cannot create output directory {root}: {exc}") from None
    holder = f"pid {os.getpid()} on {platform.node()}"
    claimed = False
    try:
        if shard is None:
            store._lock(LOCK, shared=False, holder=holder)
        else:
            store._lock(LOCK, shared=True, holder=holder)
            store._lock(f".rwesim-shard-{shard[0]}-of-{shard[1]}.lock", shared=False, holder=holder)
        claimed = True
        _probe_writable(store.root)
        store.check_foreign()
        with store.meta_lock():
            _claim(store, spec, resume=resume, overwrite=overwrite, fingerprints=fingerprints)
    except BaseException:
        store.release()
        if store.created and claimed and shard is None:
            with contextlib.suppress(OSError):
                shutil.rmtree(store.root)
        raise
    return store


def _probe_writable(root: Path) -> None:
    probe = root / f".rwesim-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StoreError(f"output directory {root} is not writable: {exc}") from None


def _claim(store: Store, spec, *, resume: bool, overwrite: bool, fingerprints) -> None:
    root = store.root
    if not store.meta_path.exists():
        if store._files():
            raise StoreError(f"{root} holds result parts but no run.json; it is not usable")
        store.write_meta(new_meta(spec))
        store.fresh = True
        return
    meta = store.read_meta()
    if overwrite:
        for p in store.parts.glob("*.parquet"):
            p.unlink()
        if store.plots.is_dir():
            shutil.rmtree(store.plots)
        store.write_meta(new_meta(spec))
        store.fresh = True
        return
    if meta["format_version"] != FORMAT_VERSION:
        raise StoreError(
            f"{root} holds results in format version {meta['format_version']} (rwesim 0.1); "
            f"they can be read (summarize, plot) but not resumed by format version "
            f"{FORMAT_VERSION}; choose another directory (or --overwrite to discard them)"
        )
    old = meta.get("study", {})
    same_but_reps = {k: v for k, v in old.items() if k != "reps"} == {
        k: v for k, v in spec.items() if k != "reps"
    }
    if not same_but_reps:
        raise StoreError(
            f"{root} holds results of a different study ({_differences(old, spec)}); "
            "choose another directory (or --overwrite to discard them)"
        )
    _check_fingerprints(root, meta, fingerprints)
    old_reps, new_reps = old["reps"], spec["reps"]
    if new_reps < old_reps:
        raise StoreError(
            f"{root} holds a run of this study with reps={old_reps}; reps={new_reps} is "
            "fewer (summarize reads any subset; use another directory for a smaller run)"
        )
    if new_reps > old_reps:
        if not resume:
            raise StoreError(
                f"{root} holds a run of this study with reps={old_reps}; pass --resume to "
                f"add replicates {old_reps}..{new_reps - 1}"
            )
        segments = [*meta.get("rep_segments", [[0, old_reps]]), [old_reps, new_reps]]
        meta.update(study=spec, rep_segments=segments, status="running")
        meta.pop("finished", None)
        store.write_meta(meta)
        return
    if meta.get("status") == "complete":
        raise StoreError(
            f"{root} holds a finished run; use --overwrite to redo it "
            "(or --resume with a larger --reps to add replicates)"
        )
    if not resume:
        raise StoreError(
            f"{root} holds an unfinished run of this study; pass --resume to continue it"
        )


def _check_fingerprints(root: Path, meta: dict[str, Any], fingerprints) -> None:
    if not fingerprints or not meta.get("conditions"):
        return
    old = {c["index"]: (c["fingerprint"], c["label"]) for c in meta["conditions"]}
    for index, fp in fingerprints.items():
        if index in old and old[index][0] != fp:
            raise StoreError(
                f"condition {old[index][1]!r} has changed since the run in {root} started "
                "(a scenario definition differs); start a new run in another directory"
            )


def new_meta(spec: dict[str, Any]) -> dict[str, Any]:
    """The run.json document of a new run, written when the directory is claimed
    (``conditions`` are filled in once their truths are known)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "identity": study_identity(spec),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "running",
        "study": spec,
        "rep_segments": [[0, spec["reps"]]],
        "conditions": [],
        "tasks_total": None,
        "packages": package_versions(),
    }
