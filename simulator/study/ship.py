"""Maintainer tool: compute and ship the built-in scenarios' calibrations and truths.

``python -m simulator.study.ship [--truth-only] [NAME ...]`` recomputes with the exact
engine (ignoring caches; ``--truth-only`` keeps the shipped calibrations) and writes
``simulator/data/calibrations.json`` and ``simulator/data/truths.json``.  Run it after
any change to a built-in scenario, the kernel's draw layout or the calibration / truth
method.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .. import cache, calibration
from ..catalog import BUILTIN, get_scenario
from . import truth as truth_mod

DATA = cache.DATA


def _update(path: Path, key: str, record: dict) -> None:
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = record
    path.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")


def ship(names: list[str], truth_only: bool = False) -> None:
    """Recompute and store calibration (unless ``truth_only``) and truth of each scenario."""
    for name in names:
        sc = get_scenario(name)
        start = time.perf_counter()
        cal = calibration.calibrate(sc, use_cache=truth_only)
        _update(DATA / "calibrations.json", cal.key, {**cal.to_json(), "scenario": name})
        tr = truth_mod.truth(sc, use_cache=False)
        _update(DATA / "truths.json", tr.key, {**tr.to_dict(), "scenario": name})
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)


def prune() -> None:
    """Drop shipped entries whose keys no built-in scenario has any more."""
    cal_keys = {calibration.calibration_key(get_scenario(n)) for n in BUILTIN}
    truth_keys = {truth_mod.truth_key(get_scenario(n)) for n in BUILTIN}
    for path, keep in ((DATA / "calibrations.json", cal_keys), (DATA / "truths.json", truth_keys)):
        if path.is_file():
            data = {k: v for k, v in json.loads(path.read_text()).items() if k in keep}
            path.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    truth_only = "--truth-only" in args
    names = [a for a in args if a != "--truth-only"]
    ship(names or list(BUILTIN), truth_only=truth_only)
    prune()
