"""The documentation: the site builds with warnings as errors, its examples run, the design
document keeps the section numbers that code, tests and notebooks cite, and no project
file refers to a document outside the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# The sections of docs/design.md, cited by number ("docs/design.md §3") across the project.
DESIGN_SECTIONS = (
    "1. Purpose and scope",
    "2. The data-generating model",
    "3. Estimands and non-collapsibility",
    "4. Estimators",
    "5. Performance measures",
    "6. Architecture and the dependency rule",
    "7. Reproducibility",
    "8. Published figures and calibration targets",
)
# Background documents that live outside the repository: the product must not need them.
# The names are assembled here so that this file does not itself refer to them.
_BRIEF_FOLDER = "sha" + "red"
_BRIEF_FILES = ("DESIGN", "calibration")
OUTSIDE = tuple(
    name.encode()
    for name in (
        *(f"{stem}.md" for stem in _BRIEF_FILES),
        f"../{_BRIEF_FOLDER}",
        f"{_BRIEF_FOLDER}/",
    )
)
_PLANTED = f"../{_BRIEF_FOLDER}/{_BRIEF_FILES[0]}.md"


def sphinx(builder: str, out: Path, doctrees: Path) -> subprocess.CompletedProcess:
    """``python -m sphinx -W --keep-going -b BUILDER docs OUT``, as documented."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "NUMBA_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", builder]
    cmd += ["-d", str(doctrees), str(DOCS), str(out)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def doctrees(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("doctrees")


def test_site_builds_without_warnings(tmp_path, doctrees):
    res = sphinx("html", tmp_path / "html", doctrees)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]
    for page in ("index", "design", "validation", "guide/getting-started", "api/index"):
        assert (tmp_path / "html" / f"{page}.html").is_file(), page
    # the API reference is generated from the code: the public functions are on it
    api = (tmp_path / "html" / "api" / "generated" / "estimators.html").read_text()
    assert 'id="estimators.siptw"' in api
    core = (tmp_path / "html" / "api" / "generated" / "simulator.html").read_text()
    assert 'id="simulator.simulate"' in core


def test_examples_run_and_print_what_they_show(tmp_path, doctrees):
    res = sphinx("doctest", tmp_path / "doctest", doctrees)
    output = tmp_path / "doctest" / "output.txt"
    report = output.read_text() if output.is_file() else ""
    assert res.returncode == 0, report[-6000:] + res.stderr[-3000:]
    totals = re.search(r"^\s+(\d+) tests\n\s+(\d+) failures in tests", report, re.M)
    assert totals, report[-2000:]
    assert int(totals.group(1)) >= 50 and int(totals.group(2)) == 0, totals.group(0)


def test_design_document_keeps_its_numbered_sections():
    text = (DOCS / "design.md").read_text()
    top = re.findall(r"^## (\d+\. .+)$", text, re.M)
    assert tuple(top[: len(DESIGN_SECTIONS)]) == DESIGN_SECTIONS
    assert all(not re.match(r"\d+\.", t) for t in top[len(DESIGN_SECTIONS) :]), top


def test_readme_links_the_design_document_and_the_build_command():
    readme = (ROOT / "README.md").read_text()
    assert "(docs/design.md)" in readme
    assert "python -m sphinx -W --keep-going -b html docs docs/_build/html" in readme


def tracked_files() -> list[Path]:
    """Files under version control (every file but build output when git is unavailable)."""
    try:
        res = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        )
        return [ROOT / p for p in res.stdout.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "_build", "generated", "__pycache__", "results", ".hypothesis"}
        return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.parts)]


def outside_references(files: list[Path], root: Path = ROOT) -> list[str]:
    """``path:line: text`` of every line naming a document outside the repository."""
    hits = []
    for path in files:
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        for k, line in enumerate(path.read_bytes().splitlines(), start=1):
            if any(word in line for word in OUTSIDE):
                text = line.decode(errors="replace").strip()[:120]
                hits.append(f"{path.relative_to(root)}:{k}: {text}")
    return hits


def test_no_project_file_refers_to_a_document_outside_the_repository():
    files = tracked_files()
    assert len(files) > 50  # the whole project is searched, not an empty list
    hits = outside_references(files)
    assert not hits, "references to documents outside the repository:\n" + "\n".join(hits)


def test_the_search_finds_an_outside_reference(tmp_path):
    planted = tmp_path / "module.py"
    planted.write_text(f'"""See {_PLANTED} section 3."""\n')
    clean = tmp_path / "clean.py"
    clean.write_text('"""See docs/design.md section 3."""\n')
    assert outside_references([clean], tmp_path) == []
    assert outside_references([planted, clean], tmp_path) == [
        f'module.py:1: """See {_PLANTED} section 3."""'
    ]


def test_plain_docstring_text_is_escaped_outside_literals():
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        from plain_docstrings import escape_plain_docstring
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    lines = [
        "Flags: |bias| > 3 MCSE; |fine - coarse| is conservative.",
        "Returns exp(params_), see ``params_`` and :attr:`params_`.",
        "float | None, a|b|c, snake_case_name and __init__ stay.",
        "Example::",
        "",
        "    x = cph.params_  # |literal|",
        "Back to text: hazard_ratios_.",
        ">>> cph.params_",
    ]
    assert escape_plain_docstring(lines) == [
        r"Flags: \|bias\| > 3 MCSE; \|fine - coarse\| is conservative.",
        r"Returns exp(params\_), see ``params_`` and :attr:`params_`.",
        "float | None, a|b|c, snake_case_name and __init__ stay.",
        "Example::",
        "",
        "    x = cph.params_  # |literal|",
        r"Back to text: hazard_ratios\_.",
        ">>> cph.params_",
    ]
