"""Installs as users make them: read-only with no writable HOME, and the README's sequence.

Both defects came from numba caching compiled kernels beside their source:

* a read-only install without a writable HOME failed on every command, ``rwesim --help``
  included ("cannot cache function");
* the README's two set-up commands run in order in one venv (``pip install .`` and a run,
  then ``pip install -e ".[test]"``) left ``site-packages/{simulator,estimators}/__pycache__``
  full of numba files pip does not know of; those folders then shadowed the editable
  install as namespace packages (``import simulator`` and ``rwesim`` failed).

The package now points ``NUMBA_CACHE_DIR`` at a user-writable cache (see
``simulator/_numba_cache.py``).  The unprivileged runs use the 'nobody' account where it can
run this interpreter; otherwise (the interpreter lives under root's 0700 home) they run as
root with every capability dropped, so file permissions apply to it like to any user.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import site
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534
_PR_CAPBSET_DROP = 24

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not sys.platform.startswith("linux"),
    reason="needs root on Linux to run a command as an unprivileged user",
)


def _drop_privileges_as_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _drop_capabilities() -> None:
    """Stay uid 0 but empty the capability bounding set: after exec the process has no
    capabilities, so it cannot write where its owner bits forbid it."""
    libc = ctypes.CDLL(None, use_errno=True)
    cap = 0
    while libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1


def _nobody_can_run_python() -> bool:
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import numpy, numba"],
            preexec_fn=_drop_privileges_as_nobody,
            capture_output=True,
            env={"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent"},
            cwd="/",
        )
    except OSError:  # the interpreter itself is out of nobody's reach
        return False
    return probe.returncode == 0


@functools.cache
def _unprivileged():
    """The preexec_fn that makes a child process unprivileged."""
    return _drop_privileges_as_nobody if _nobody_can_run_python() else _drop_capabilities


def _copy_sources(dest: Path) -> Path:
    """The project's installable files, without compiled or cached leftovers."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
    dest.mkdir(parents=True)
    for pkg in ("simulator", "estimators"):
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dest / name)
    return dest


def _pip(*args: str) -> None:
    # Run pip away from the project folder and without PYTHONPATH: an editable install
    # of the checkout leaves rwesim.egg-info there, which pip would take for the
    # installation to replace (and then refuse to uninstall, as outside the venv).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tempfile.gettempdir(),
        env=env,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def _read_only(path: Path) -> None:
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(dirpath, f)
            os.chmod(p, os.stat(p).st_mode & ~0o222)
        os.chmod(dirpath, 0o555)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NUMBA_", "RWESIM_", "XDG_", "PYTHON", "TMP", "TEMP"))
    }
    env["NUMBA_NUM_THREADS"] = "1"
    return {**env, **extra}


def _scratch_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="rwesim-install-"))
    os.chmod(path, 0o755)
    return path


@pytest.fixture
def scratch():
    """A world-traversable scratch folder (pytest's tmp_path is private to root)."""
    path = _scratch_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def read_only_install():
    """The project installed (not editable) with pip --target, then made read-only."""
    path = _scratch_dir()
    target = path / "site"
    _pip("install", "--no-deps", "--target", str(target), str(_copy_sources(path / "src")))
    _read_only(target)
    yield target
    shutil.rmtree(path, ignore_errors=True)


def _files_not_recorded(site_dir: Path) -> list[str]:
    """Files under the installed packages that pip's RECORD does not list (pip would leave
    them, and their folders, behind on uninstall)."""
    (record,) = site_dir.glob("rwesim-*.dist-info/RECORD")
    known = {line.split(",")[0] for line in record.read_text().splitlines()}
    found = {
        p.relative_to(site_dir).as_posix()
        for pkg in ("simulator", "estimators")
        for p in (site_dir / pkg).rglob("*")
        if p.is_file()
    }
    return sorted(found - known)


def test_cli_runs_from_a_read_only_install_without_a_writable_home(scratch, read_only_install):
    target = read_only_install
    home = scratch / "home"  # exists but read-only: '/nonexistent' is creatable by uid 0
    home.mkdir(mode=0o555)
    tmp = scratch / "tmp"  # the per-user temp dir the cache falls back to
    tmp.mkdir()
    os.chmod(tmp, 0o1777)
    out = scratch / "out"
    out.mkdir()
    os.chmod(out, 0o777)
    parquet = str(out / "c.parquet")
    env = _clean_env(HOME=str(home), PYTHONPATH=str(target), TMPDIR=str(tmp))
    script = str(target / "bin" / "rwesim")
    where = (
        "import simulator, estimators, os; "
        "print(simulator.__file__, estimators.__file__, os.environ['NUMBA_CACHE_DIR'])"
    )
    estimators_alone = (  # usable without simulator: it sets up the cache itself
        "import estimators, os, sys; assert 'simulator' not in sys.modules; "
        "print(os.environ['NUMBA_CACHE_DIR'])"
    )
    runs = {
        "where": [sys.executable, "-c", where],
        "estimators-alone": [sys.executable, "-c", estimators_alone],
        "help": [sys.executable, script, "--help"],
        "simulate": [sys.executable, script, "simulate", "flatiron", "-n", "20", "-o", parquet],
    }
    results = {}
    for name, cmd in runs.items():  # each as an unprivileged user
        results[name] = subprocess.run(
            cmd, env=env, preexec_fn=_unprivileged(), capture_output=True, text=True, cwd="/"
        )
        assert results[name].returncode == 0, (name, results[name].stderr)
    sim_file, est_file, cache = results["where"].stdout.split()
    assert sim_file.startswith(str(target)) and est_file.startswith(str(target))
    assert cache.startswith(str(tmp)), cache
    assert results["estimators-alone"].stdout.strip() == cache
    assert "Usage" in results["help"].stdout
    assert "wrote 20 patients" in results["simulate"].stderr
    assert (out / "c.parquet").stat().st_size > 0
    assert list(Path(cache).rglob("*.nbi")), "the kernels were not cached in the temp dir"
    assert not list(target.rglob("*.nbi"))
    private = Path(cache).parent.parent  # <temp>/rwesim-<uid>; then numba/<source key>
    assert stat.S_IMODE(private.stat().st_mode) == 0o700


def test_cli_runs_when_nothing_is_writable(scratch, read_only_install):
    """No writable cache anywhere: kernels compile in memory instead of failing."""
    target = read_only_install
    sealed = scratch / "sealed"
    sealed.mkdir(mode=0o555)
    code = (
        "import sys, tempfile; tempfile.tempdir = sys.argv[1]\n"  # no writable temp dir
        "import os, simulator\n"
        "assert 'NUMBA_CACHE_DIR' not in os.environ\n"
        "df = simulator.simulate('flatiron', 20, 2)\n"
        "print(len(df))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(sealed)],
        env=_clean_env(HOME=str(sealed), PYTHONPATH=str(target)),
        preexec_fn=_unprivileged(),
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "20"
    assert not list(target.rglob("*.nbi"))


@pytest.mark.slow
def test_readme_sequence_non_editable_then_editable_install(scratch):
    """pip install . + a run, then pip install -e . in the same venv: still importable.

    Marked slow (about a minute and a half of installs and cold JIT compiles): ``.ci/run``
    itself runs this sequence on every CI run (the README's main command, then its test
    command in the same venv), so a regression fails CI there before this test is
    reached; run it locally with ``python -m pytest -m slow tests/test_install.py``."""
    src = _copy_sources(scratch / "src")
    venv = scratch / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # The dependencies come from this interpreter's environment (a .pth adds its folders,
    # whose own .pth files, such as an editable rwesim, are not processed).
    outer = [p for p in [*site.getsitepackages(), sysconfig.get_path("purelib")] if p]
    (purelib / "_outer_env.pth").write_text("\n".join(dict.fromkeys(outer)) + "\n")
    env = _clean_env(HOME=str(scratch / "home"))
    _pip("--python", str(python), "install", "--no-deps", str(src))
    assert (purelib / "simulator" / "__init__.py").is_file()
    ran = subprocess.run(
        [venv / "bin" / "rwesim", "simulate", "flatiron", "-n", "20", "-o", scratch / "c.csv"],
        env=env,
        capture_output=True,
        text=True,
        cwd=scratch,
    )
    assert ran.returncode == 0, ran.stderr  # the kernels are compiled and cached
    assert _files_not_recorded(purelib) == []
    _pip("--python", str(python), "install", "--no-deps", "-e", str(src))
    for pkg in ("simulator", "estimators"):
        assert not (purelib / pkg).exists(), f"site-packages/{pkg} was left behind"
    check = subprocess.run(
        [python, "-c", "import simulator, estimators; print(simulator.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        cwd=scratch,  # not the checkout: '' on sys.path would find its packages
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == str(src / "simulator" / "__init__.py")
    helped = subprocess.run(
        [venv / "bin" / "rwesim", "--help"], env=env, capture_output=True, cwd=scratch
    )
    assert helped.returncode == 0, helped.stderr


def test_the_two_cache_modules_are_one_file():
    """simulator and estimators cannot import each other, so each holds the same module."""
    one = (ROOT / "simulator" / "_numba_cache.py").read_text()
    assert one == (ROOT / "estimators" / "_numba_cache.py").read_text()
