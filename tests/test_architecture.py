"""The dependency rule (docs/design.md §6): arrows point one way.

simulator.study -> estimators and -> the cohort core; the cohort core and estimators never
import each other.  Checked on the source (every import statement, at any depth).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports(path: Path) -> set[str]:
    """Top-level package of every absolute import, and '.'-relative targets resolved."""
    tree = ast.parse(path.read_text())
    pkg = path.relative_to(ROOT).with_suffix("").parts[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                out.add(".".join([*base, node.module] if node.module else base))
            else:
                out.add(node.module)
    return out


def modules(package: str, exclude: str | None = None) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    return [f for f in files if not (exclude and exclude in f.relative_to(ROOT).parts)]


@pytest.mark.parametrize("path", modules("estimators"), ids=lambda p: p.name)
def test_estimators_never_import_simulator(path):
    bad = {m for m in imports(path) if m == "simulator" or m.startswith("simulator.")}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", modules("simulator", exclude="study"), ids=lambda p: p.name)
def test_cohort_core_never_imports_estimators(path):
    bad = {m for m in imports(path) if m == "estimators" or m.startswith("estimators.")}
    assert not bad, f"{path.name} imports {bad}"


def test_core_reaches_the_study_layer_only_lazily():
    """simulator/__init__ exposes simulator.truth (study layer) through __getattr__ only."""
    tree = ast.parse((ROOT / "simulator" / "__init__.py").read_text())
    top_level = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert all("study" not in (n.module or "") for n in top_level)
    for path in modules("simulator", exclude="study"):
        if path.name != "__init__.py":
            assert not {m for m in imports(path) if "study" in m}, path.name


def test_importing_the_core_does_not_load_estimators():
    import subprocess
    import sys

    code = (
        "import simulator, sys; simulator.simulate('flatiron', 10, 1); "
        "print('estimators' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"
