"""Notebooks are committed twice: a jupytext percent script (``notebooks/NN_name.py``, the
source to edit and review) and the paired ``.ipynb`` that CI executes with nbmake.  The
two must hold the same cells, and the ``.ipynb`` must hold no outputs or execution
counts (outputs are produced by running it, never committed).

Regenerate a pair after editing the script:
``jupytext --to ipynb --update notebooks/NN_name.py``.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SCRIPTS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
IPYNBS = sorted(NOTEBOOKS.glob("*.ipynb"))


def cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """(cell type, source) of every cell."""
    return [(c.cell_type, c.source) for c in nb.cells]


def stored_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """One message per code cell that holds outputs or an execution count."""
    found = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code":
            continue
        if c.get("outputs"):
            found.append(f"cell {i}: {len(c.outputs)} output(s)")
        if c.get("execution_count") is not None:
            found.append(f"cell {i}: execution_count {c.execution_count}")
    return found


def test_notebooks_exist_in_pairs():
    assert SCRIPTS, f"no notebook scripts in {NOTEBOOKS}"
    assert [p.stem for p in SCRIPTS] == [p.stem for p in IPYNBS]


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.name)
def test_ipynb_has_no_outputs(ipynb):
    nb = nbformat.read(ipynb, as_version=4)
    assert stored_outputs(nb) == [], f"{ipynb.name} has stored outputs; clear them"


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.name)
def test_ipynb_matches_its_script(ipynb):
    nb = nbformat.read(ipynb, as_version=4)
    script = jupytext.read(ipynb.with_suffix(".py"))
    assert nb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    assert cells(nb) == cells(script), (
        f"{ipynb.name} differs from {ipynb.with_suffix('.py').name}; run "
        f"jupytext --to ipynb --update {ipynb.with_suffix('.py').name}"
    )


def test_checks_detect_outputs_and_edits():
    script = "# %% [markdown]\n# Title\n\n# %%\nx = 1\nx\n"
    nb = jupytext.reads(script, fmt="py:percent")
    assert stored_outputs(nb) == []
    edited = jupytext.reads(script.replace("x = 1", "x = 2"), fmt="py:percent")
    assert cells(edited) != cells(nb)
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "1"})]
    nb.cells[1].execution_count = 1
    assert stored_outputs(nb) == ["cell 1: 1 output(s)", "cell 1: execution_count 1"]
