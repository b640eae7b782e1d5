"""The exact truth engine agrees with the Monte Carlo oracle (slow: 4M patients each).

For every built-in scenario (and one with informative loss to follow-up) both engines
compute the truths of the same solved model; every estimand both compute must agree
within 3 combined standard errors: sqrt(MC SE^2 + exact SE^2 + exact numerical^2).
"""

import math

import pytest

import simulator
from simulator.study import truth as truth_mod

INFORMATIVE = (
    "flatiron-informative-loss",
    {"censoring.lost_log_hr": {"ecog_2plus": 1.0, "age10": 0.3}, "censoring.lost_per_year": 0.15},
)


def scenarios():
    out = [(n, {}) for n in simulator.scenario_names()]
    return [*out, INFORMATIVE]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "changes"), scenarios(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_exact_engine_agrees_with_monte_carlo(name, changes, tmp_path, monkeypatch):
    if changes:
        monkeypatch.setenv("RWESIM_CACHE_DIR", str(tmp_path))
        sc = simulator.get_scenario("flatiron").replace(name=name, **changes)
    else:
        sc = simulator.get_scenario(name)
    exact = truth_mod.truth(sc)
    mc = truth_mod.truth(sc, method="montecarlo")
    bad = []
    for outcome in ("pfs", "os"):
        x, m = exact[outcome], mc[outcome]
        common = sorted(set(x.values) & set(m.values) - {"generating_log_hr"})
        assert len(common) >= 13
        for k in common:
            se = math.sqrt(m.mcse[k] ** 2 + x.mcse[k] ** 2 + x.numerical[k] ** 2)
            diff = x.values[k] - m.values[k]
            if se == 0.0:
                ok = abs(diff) < 1e-12
            else:
                ok = abs(diff) <= 3 * se
            if not ok:
                bad.append(
                    f"{outcome} {k}: exact {x.values[k]:.5f} MC {m.values[k]:.5f} "
                    f"(diff {diff:.2e}, se {se:.2e})"
                )
    assert not bad, "\n".join(bad)
