"""Informative next-therapy censoring (``censoring.next_therapy_log_hr``) in the simulator."""

import subprocess
import sys

import numpy as np
import pytest
import sim_scenarios
from naive import cohort_naive

import simulator
from simulator import _cohort_kernels as K
from simulator.exceptions import ScenarioError
from simulator.generate import plan_for

NEXT = {"ecog_obs_2plus": 1.5, "visceral": 1.0, "age10": -0.2}


def informative_every_option():
    return sim_scenarios.every_option().replace(
        **{"censoring.next_therapy_log_hr": NEXT}, name="every-option-informative"
    )


def test_kernel_equals_reference_bit_for_bit_with_next_therapy_log_hr():
    sc = informative_every_option()
    n = 2 * K.CHUNK + 321
    arr = simulator.simulate_arrays(sc, n, seed=77)
    ref = cohort_naive(plan_for(sc), n, 77)
    np.testing.assert_array_equal(arr.floats[K.F_PFS], ref["pfs"])
    np.testing.assert_array_equal(arr.ints[K.I_PFS_REASON], ref["pfs_reason"].astype(np.int8))
    np.testing.assert_array_equal(arr.floats[K.F_OS], ref["os"])


def test_empty_dict_draws_nothing_more_and_keeps_the_fingerprint():
    sc = simulator.get_scenario("flatiron")
    assert "next_therapy_log_hr" not in sc.to_dict()["censoring"]
    again = sc.replace(**{"censoring.next_therapy_log_hr": {}})
    assert again.fingerprint() == sc.fingerprint()
    a = simulator.simulate_arrays(sc, 3000, seed=5)
    b = simulator.simulate_arrays(again, 3000, seed=5)
    np.testing.assert_array_equal(a.floats, b.floats)


def test_only_the_rwpfs_censoring_changes_and_only_through_the_rate():
    base = sim_scenarios.every_option()
    sc = informative_every_option()
    a = simulator.simulate(base, 20_000, seed=3, latent=True)
    b = simulator.simulate(sc, 20_000, seed=3, latent=True)
    for col in ("treated", "os_months", "os_event", "age", "ecog", "entry_month"):
        assert a[col].equals(b[col]), col
    # ECOG 2+ visceral patients: next-therapy hazard x e^2.5 -> many more next-therapy exits
    hi = (b["ecog"] == "2+") & (b["visceral"] == 1)
    lo = (b["ecog"] == "0") & (b["visceral"] == 0)
    share = lambda df, m: float((df.loc[m, "pfs_reason"] == "next_therapy").mean())  # noqa: E731
    assert share(b, hi) > 2.5 * share(a, hi)
    assert share(b, lo) == pytest.approx(share(a, lo), abs=0.03)  # age10 only: small change


def test_toml_round_trip_keeps_next_therapy_log_hr():
    sc = informative_every_option()
    again = simulator.scenario_from_toml(sc.to_toml())
    assert again == sc
    assert dict(again.censoring.next_therapy_log_hr) == NEXT


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"censoring.next_therapy_log_hr": {"ecog": 1.0}}, "censoring.next_therapy_log_hr"),
        (
            {"censoring.next_therapy_log_hr": {"visceral": "1"}},
            "censoring.next_therapy_log_hr['visceral']='1'",
        ),
        (
            {
                "censoring.next_therapy_log_hr": {"visceral": 1.0},
                "censoring.next_therapy_per_year": 0.0,
            },
            "next_therapy_per_year=0",
        ),
    ],
)
def test_bad_next_therapy_log_hr_is_named(changes, message):
    with pytest.raises(ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]")):
        simulator.get_scenario("flatiron").replace(**changes)


def test_builtin_informative_scenario_censors_sicker_patients_first():
    df = simulator.simulate("flatiron-informative", 20_000, seed=11)
    nxt = df["pfs_reason"] == "next_therapy"
    sick = (df["ecog"] == "2+") | (df["visceral"] == 1)
    # (a share of exits, not a hazard: sicker patients also progress sooner)
    assert nxt[sick].mean() > 1.3 * nxt[~sick].mean()
    # next therapy 1 / 0.3 times as fast under letrozole alone
    assert nxt[df["treated"] == 0].mean() > 1.8 * nxt[df["treated"] == 1].mean()


def test_truth_engine_study_censoring_knows_next_therapy_log_hr():
    sc = simulator.get_scenario("flatiron-informative")
    flat = sc.replace(**{"censoring.next_therapy_log_hr": {}}, name="x")
    a, b = simulator.truth(sc).pfs, simulator.truth(flat).pfs
    assert a.values["ate_log_hr_uncensored"] == pytest.approx(b.values["ate_log_hr_uncensored"])
    k = "ate_log_hr_study_censoring"
    assert abs(a.values[k] - b.values[k]) > 10 * (a.error[k] + b.error[k])


def test_exact_engine_with_a_few_distinct_os_censoring_rates_does_not_corrupt_memory():
    """Covariate-dependent loss on one binary feature: <= 64 distinct rates, exact rate
    nodes for OS (this wrote past the end of the spread array before main 160adf1; run
    in a child process so a heap corruption fails the test, not the run)."""
    code = (
        "import simulator, math\n"
        "from simulator import exact, calibration as cal\n"
        "sc = simulator.get_scenario('flatiron').replace("
        "**{'censoring.lost_log_hr': {'visceral': 0.7}})\n"
        "t = simulator.truth(sc, use_cache=False)\n"
        "v = t.os.values['ate_log_hr_study_censoring']\n"
        "assert math.isfinite(v) and abs(v - t.os.values['ate_log_hr']) < 0.1, v\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
