"""Results store: a directory holding ``run.json`` and one Parquet part per finished chunk.

Layout::

    DIR/run.json                      study spec, conditions with their truths, seeds,
                                      package versions, status
    DIR/parts/c0003-k00017.parquet    replicates of chunk 17 of condition 3 (tidy rows:
                                      replicate x outcome x estimator)

A part is written to a temporary name and renamed into place, so a part either exists
whole or not at all: an interrupted run (Ctrl-C, kill -9) loses at most the chunks in
flight and ``--resume`` redoes only those.  A finished run refuses to be overwritten
unless asked; Parquet files that are not this store's are an error, not silently mixed.
"""

from __future__ import annotations

import json
import os
import platform
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .exceptions import StoreError

FORMAT = "rwesim-results"
FORMAT_VERSION = 1
PART = re.compile(r"^c(\d{4})-k(\d{5})\.parquet$")
SCHEMA = pa.schema(
    [
        ("condition", pa.int32()),
        ("rep", pa.int32()),
        ("outcome", pa.string()),
        ("estimator", pa.string()),
        ("estimand", pa.string()),
        ("log_hr", pa.float64()),
        ("se", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("p_value", pa.float64()),
        ("converged", pa.bool_()),
        ("n", pa.int32()),
        ("events", pa.int32()),
        ("ess", pa.float64()),
        ("seconds", pa.float64()),
        ("error", pa.string()),
        ("warnings", pa.string()),
    ]
)
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


@dataclass
class Store:
    """An open results directory."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    @property
    def meta_path(self) -> Path:
        return self.root / "run.json"

    @property
    def parts(self) -> Path:
        return self.root / "parts"

    # ---- metadata ----------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{self.meta_path} is unreadable: {exc}") from None
        if meta.get("format") != FORMAT:
            raise StoreError(f"{self.meta_path} is not an rwesim results file")
        return meta

    def write_meta(self, meta: dict[str, Any]) -> None:
        tmp = self.root / f".run.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(meta, indent=1, default=_jsonable))
        os.replace(tmp, self.meta_path)

    # ---- parts -------------------------------------------------------------------------
    def done(self) -> set[tuple[int, int]]:
        """(condition, chunk) of every part on disk."""
        out = set()
        if self.parts.is_dir():
            for p in self.parts.iterdir():
                m = PART.match(p.name)
                if m:
                    out.add((int(m.group(1)), int(m.group(2))))
        return out

    def write_part(self, condition: int, chunk: int, rows: pd.DataFrame) -> None:
        """Write one chunk's rows atomically."""
        self.parts.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(rows, schema=SCHEMA, preserve_index=False)
        final = self.parts / part_name(condition, chunk)
        tmp = self.parts / f".{final.name}.{os.getpid()}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, final)

    def read_results(self) -> pd.DataFrame:
        """Every finished row, sorted by condition, replicate, outcome, estimator."""
        files = sorted(p for p in self.parts.glob("*.parquet") if PART.match(p.name))
        if not files:
            return SCHEMA.empty_table().to_pandas()
        frames = []
        for f in files:
            try:
                t = pq.read_table(f)
            except (OSError, pa.ArrowInvalid) as exc:
                raise StoreError(f"{f} is not a readable Parquet file: {exc}") from None
            if not t.schema.equals(SCHEMA, check_metadata=False):
                raise StoreError(f"{f} does not have the rwesim results schema")
            frames.append(t.to_pandas())
        df = pd.concat(frames, ignore_index=True)
        return df.sort_values(["condition", "rep", "outcome", "estimator"], ignore_index=True)

    def truths(self) -> pd.DataFrame:
        """condition, outcome, estimand, theta, theta_mcse from run.json."""
        rows = []
        for c in self.read_meta()["conditions"]:
            for outcome, by_estimand in c["truth"].items():
                for estimand, (theta, mcse) in by_estimand.items():
                    rows.append((c["index"], outcome, estimand, theta, mcse))
        return pd.DataFrame(
            rows, columns=["condition", "outcome", "estimand", "theta", "theta_mcse"]
        )

    def check_foreign(self) -> None:
        """Refuse a directory holding Parquet files that are not this store's parts."""
        for p in self.root.rglob("*.parquet"):
            if p.parent != self.parts or not PART.match(p.name):
                raise StoreError(
                    f"{self.root} holds a Parquet file that is not an rwesim result part "
                    f"({p.relative_to(self.root)}); use an empty or rwesim output directory"
                )


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, tuple):
        return list(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def open_store(root: str | Path, spec: dict[str, Any], *, resume: bool, overwrite: bool) -> Store:
    """Open ``root`` for a run of ``spec`` (the study dict), enforcing the resume rules.

    * empty / new directory: a fresh run;
    * existing run of the same study: needs ``resume`` (or ``overwrite``);
    * a finished run: refused unless ``overwrite`` (parts are then deleted);
    * a different study, foreign Parquet files or an unreadable run.json: refused.
    """
    store = Store(Path(root))
    if store.root.exists() and not store.root.is_dir():
        raise StoreError(f"output {root} exists and is not a directory")
    store.root.mkdir(parents=True, exist_ok=True)
    store.check_foreign()
    if not store.meta_path.exists():
        if store.done():
            raise StoreError(f"{root} holds result parts but no run.json; it is not usable")
        return store
    meta = store.read_meta()
    if overwrite:
        for p in store.parts.glob("*.parquet"):
            p.unlink()
        store.meta_path.unlink()
        return store
    if meta.get("study") != spec:
        raise StoreError(
            f"{root} holds results of a different study; choose another directory "
            "(or --overwrite to discard them)"
        )
    if meta.get("status") == "complete":
        raise StoreError(f"{root} holds a finished run; use --overwrite to redo it")
    if not resume:
        raise StoreError(
            f"{root} holds an unfinished run of this study; pass --resume to continue it"
        )
    return store


def new_meta(
    spec: dict[str, Any], conditions: list[dict[str, Any]], tasks_total: int
) -> dict[str, Any]:
    """The run.json document of a new run."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "running",
        "study": spec,
        "conditions": conditions,
        "tasks_total": tasks_total,
        "packages": package_versions(),
    }
