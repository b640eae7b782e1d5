"""Sphinx configuration of the rwesim documentation site.

Build (warnings are errors) and run the examples::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m sphinx -W --keep-going -b doctest docs docs/_build/doctest
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import types
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # document (and doctest) this checkout's code
sys.path.insert(0, str(Path(__file__).parent / "_ext"))
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
# autosummary imports every module of a package, ``__main__`` too: importing
# simulator/study/__main__.py would run the command line with Sphinx's arguments.
for _main in [m for pkg in ("simulator", "estimators") for m in (ROOT / pkg).rglob("__main__.py")]:
    _name = ".".join(_main.relative_to(ROOT).with_suffix("").parts)
    sys.modules.setdefault(_name, types.ModuleType(_name))

project = "rwesim"
author = "rwesim developers"
copyright = "rwesim developers, BSD-3-Clause"
try:
    release = metadata.version("rwesim")
except metadata.PackageNotFoundError:  # a checkout that is not installed
    release = "0.1.0"
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "plain_docstrings",  # docs/_ext: numpy-style text that reST would misread
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

# ---- Markdown (MyST) ----------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist", "substitution"]
myst_heading_anchors = 3  # links such as design.md#3-estimands-and-non-collapsibility
# docs/truth.md (the truth engine's page) is written separately: link it when it is there.
HAVE_TRUTH_PAGE = (Path(__file__).parent / "truth.md").is_file()
myst_substitutions = {
    "truth_page": "{doc}`truth`" if HAVE_TRUTH_PAGE else "{mod}`simulator.study.truth`",
}

# ---- API reference --------------------------------------------------------------------
# Whole modules are documented (autosummary walks the packages), so a function added
# or renamed in the code shows up without editing these pages.
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"


def _clashes(packages: tuple[str, ...]) -> dict[str, list[str]]:
    """Exported names that are also submodule names (``estimators.design_matrix``): such
    an object is documented on its module's page only (one object, one description)."""
    out = {}
    for name in packages:
        pkg = importlib.import_module(name)
        subs = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
        out[name] = sorted(set(getattr(pkg, "__all__", ())) & subs)
    return out


autosummary_context = {"clashes": _clashes(("simulator", "simulator.study", "estimators"))}
numpydoc_show_class_members = False  # autodoc lists members; no autosummary stubs
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
nitpicky = False
# One object is documented both where it is defined and where a package re-exports it,
# so a short cross-reference can have two targets; either is right.
suppress_warnings = ["ref.python"]

# ---- doctest ---------------------------------------------------------------------------
# Only the examples written as doctest blocks in these pages run (docstrings' ``>>>``
# snippets are illustrations, not tests).  They use tiny cohorts of built-in scenarios,
# whose calibrations and truths ship with the package, so they take seconds.
doctest_test_doctest_blocks = ""
doctest_global_setup = """
import numpy as np
import pandas as pd
pd.set_option("display.width", 100)
"""

# ---- HTML -----------------------------------------------------------------------------
html_theme = "furo"
html_title = f"rwesim {release}"
html_static_path: list[str] = []


def _drop_missing_pages(app, docname: str, source: list[str]) -> None:
    """Leave docs/truth.md out of the index's table of contents until it exists."""
    if docname == "index" and not HAVE_TRUTH_PAGE:
        source[0] = source[0].replace("\ntruth\n", "\n")


def setup(app) -> None:
    app.connect("source-read", _drop_missing_pages)
