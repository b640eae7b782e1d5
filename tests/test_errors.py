"""The error taxonomy of the cohort core, the memory check of ``simulate`` and the choice of
numba's cache directory."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

import simulator
from simulator import generate
from simulator.exceptions import CalibrationError, ScenarioError, SimulatorWarning

ROOT = Path(__file__).resolve().parent.parent
# Every module of the cohort core but calibration.py (its errors are CalibrationErrors).
CORE = sorted(p for p in (ROOT / "simulator").glob("*.py") if p.name not in {"calibration.py"})


def test_the_taxonomy_is_exported_and_stays_value_errors():
    assert simulator.ScenarioError is ScenarioError
    assert simulator.CalibrationError is CalibrationError
    assert simulator.SimulatorWarning is SimulatorWarning
    assert issubclass(ScenarioError, ValueError)  # pytest.raises(ValueError) keeps working
    assert issubclass(CalibrationError, ScenarioError)
    assert issubclass(SimulatorWarning, UserWarning)
    for name in ("ScenarioError", "CalibrationError", "SimulatorWarning"):
        assert name in simulator.__all__


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_the_cohort_core_raises_no_bare_value_error(path):
    """A bare ValueError cannot be told from numpy's or pandas' (a bug in our code)."""
    bare = [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Raise)
        and node.exc is not None
        and isinstance(getattr(node.exc, "func", node.exc), ast.Name)
        and getattr(node.exc, "func", node.exc).id == "ValueError"
    ]
    assert not bare, f"{path.name}: raise ValueError at lines {bare}; raise ScenarioError"


# ---- simulate(): size against memory ---------------------------------------------------
@pytest.mark.parametrize(
    ("scenario", "potential_outcomes", "latent"),
    [
        ("flatiron", False, False),
        ("flatiron", True, False),
        ("flatiron", True, True),
        ("po25-response", False, False),  # the response's draw: before, 3% under its peak
        ("po25-response", True, True),
        ("po25-crossover", True, True),
    ],
)
def test_bytes_per_patient_bounds_the_measured_peak(scenario, potential_outcomes, latent):
    """The estimate is an upper bound of what simulate() allocates (traced by tracemalloc,
    which numpy reports to), and not a loose one."""
    n = 200_000  # large enough for fixed costs (generators, chunk lists) not to count
    sc = simulator.get_scenario(scenario)
    # calibration, plan and JIT (the multi-chunk kernel too) out of the traced region
    simulator.simulate(sc, generate.K.CHUNK + 1, 1, potential_outcomes=potential_outcomes)
    tracemalloc.start()
    try:
        simulator.simulate(sc, n, 1, potential_outcomes=potential_outcomes, latent=latent)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per = generate.bytes_per_patient(
        potential_outcomes=potential_outcomes,
        latent=latent,
        response=sc.response is not None,
        crossover=sc.crossover is not None,
    )
    assert peak / n <= per <= 2 * peak / n, (peak / n, per)


def test_check_size_names_the_memory_needed_and_available(monkeypatch):
    monkeypatch.setattr(generate, "available_memory", lambda: 2**30)  # 1 GiB left
    per = generate.bytes_per_patient()
    fits = 2**30 // per
    assert generate.check_size(fits) == fits
    with pytest.raises(ScenarioError) as err:
        generate.check_size(fits + 1)
    msg = str(err.value)
    assert f"n={fits + 1} is not allowed here" in msg
    assert f"({per} bytes per patient)" in msg and "1.0 GiB is available" in msg


def test_small_cohorts_do_not_ask_for_the_memory(monkeypatch):
    def fail():
        raise AssertionError("available_memory called for a small cohort")

    monkeypatch.setattr(generate, "available_memory", fail)
    per = generate.bytes_per_patient()
    small = generate.SMALL_COHORT_BYTES // per
    assert generate.check_size(small) == small
    with pytest.raises(AssertionError, match="small cohort"):
        generate.check_size(small + 1)  # above the threshold the system is asked


def test_unknown_memory_skips_the_check(monkeypatch):
    monkeypatch.setattr(generate, "available_memory", lambda: None)
    assert generate.check_size(10**12) == 10**12


def test_available_memory_is_plausible():
    avail = generate.available_memory()
    assert avail is None or 0 < avail <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


# ---- numba's cache directory (simulator/_numba_cache.py) --------------------------------
def _chosen(env: dict[str, str], tmp: Path | None = None) -> str:
    """NUMBA_CACHE_DIR after the module runs in a fresh interpreter with ``env``, without
    its last part, the source key (checked here to be the module's)."""
    code = (
        "import os, runpy, sys, tempfile\n"
        "if len(sys.argv) > 2: tempfile.tempdir = sys.argv[2]\n"
        "ns = runpy.run_path(sys.argv[1])\n"
        "print(os.environ.get('NUMBA_CACHE_DIR', '<none>'))\n"
        "print(ns['source_key']())\n"
    )
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NUMBA_", "RWESIM_", "XDG_", "TMP"))
    }
    args = [sys.executable, "-c", code, str(ROOT / "simulator" / "_numba_cache.py")]
    res = subprocess.run(
        [*args, *([str(tmp)] if tmp else [])],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    chosen, key = res.stdout.split()
    if chosen == "<none>" or env.get("NUMBA_CACHE_DIR"):
        return chosen
    assert Path(chosen).name == key and len(key) == 16
    return str(Path(chosen).parent)


def test_numba_cache_dir_order_of_preference(tmp_path):
    home = tmp_path / "home"
    assert _chosen({"HOME": str(home)}) == str(home / ".cache" / "rwesim" / "numba")
    xdg = tmp_path / "xdg"
    assert _chosen({"HOME": str(home), "XDG_CACHE_HOME": str(xdg)}) == str(xdg / "rwesim" / "numba")
    own = tmp_path / "own"
    env = {"HOME": str(home), "XDG_CACHE_HOME": str(xdg), "RWESIM_CACHE_DIR": str(own)}
    assert _chosen(env) == str(own / "numba")
    assert (own / "numba").is_dir()


def test_a_users_numba_cache_dir_is_left_alone(tmp_path):
    mine = str(tmp_path / "mine")
    assert _chosen({"HOME": str(tmp_path), "NUMBA_CACHE_DIR": mine}) == mine
    assert not (tmp_path / "mine").exists() and not (tmp_path / ".cache").exists()


def test_falls_back_to_a_private_temp_dir(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("HOME is a file: nothing can be created under it")
    shared = tmp_path / "tmp"
    shared.mkdir()
    chosen = Path(_chosen({"HOME": str(not_a_dir)}, tmp=shared))
    uid = os.getuid()
    assert chosen == shared / f"rwesim-{uid}" / "numba"
    assert (chosen.parent.stat().st_mode & 0o777) == 0o700


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs chown")
def test_a_temp_dir_planted_by_another_user_is_refused(tmp_path):
    """numba's cache files are pickles: a folder someone else controls would run their code."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    shared = tmp_path / "tmp"
    planted = shared / f"rwesim-{os.getuid()}"
    planted.mkdir(parents=True)
    os.chown(planted, 65534, 65534)
    assert _chosen({"HOME": str(not_a_dir)}, tmp=shared) == "<none>"  # in-memory instead


def test_numba_imported_first_still_reads_the_cache_dir(tmp_path):
    """numba reads its environment on import: when it came first, the module reloads it."""
    code = (
        "import numba.core.config as config, simulator, os\n"
        "print(config.CACHE_DIR == os.environ['NUMBA_CACHE_DIR'] != '')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_CACHE", "RWESIM_"))}
    res = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "RWESIM_CACHE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert res.stdout.strip() == "True", res.stderr


# ---- the calibration / truth cache follows the same writable-folder order -------------
def test_record_cache_falls_back_to_a_private_temp_folder_without_a_writable_home(
    tmp_path, monkeypatch
):
    import tempfile

    from simulator import cache

    home = tmp_path / "home-is-a-file"
    home.write_text("")  # ~/.cache cannot be created under it
    monkeypatch.delenv("RWESIM_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(home))
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    root = cache.cache_dir()
    assert root == temp / f"rwesim-{os.getuid()}"
    cache.write("truth", "k-test", {"x": 1.5})
    assert cache.read("truth", "k-test") == {"x": 1.5}  # kept for the next run


def test_record_cache_prefers_rwesim_cache_dir(tmp_path, monkeypatch):
    from simulator import cache

    monkeypatch.setenv("RWESIM_CACHE_DIR", str(tmp_path / "mine"))
    assert cache.cache_dir() == tmp_path / "mine"
