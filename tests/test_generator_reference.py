"""The numba cohort kernel against the plain-NumPy reference in tests/naive.py.

Generators passed into numba draw exactly as NumPy does and both use glibc's exp/pow,
so the reference must reproduce the kernel's cohort bit for bit.
"""

import numpy as np
import pytest
import sim_scenarios
from naive import cohort_naive

import simulator
from simulator import _cohort_kernels as K
from simulator.generate import plan_for

FLOATS = {
    "age": K.F_AGE,
    "dfi": K.F_DFI,
    "ps": K.F_PS,
    "pfs": K.F_PFS,
    "os": K.F_OS,
    "entry": K.F_ENTRY,
    "frailty": K.F_FRAILTY,
    "progression": K.F_PROG,  # crossover scenarios (po25-crossover); NaN otherwise
    "crossover_months": K.F_XOVER,
}
INTS = {
    "treated": K.I_TREATED,
    "pfs_event": K.I_PFS_EVENT,
    "os_event": K.I_OS_EVENT,
    "ecog_obs": K.I_ECOG_OBS,
    "ecog": K.I_ECOG_TRUE,
    "age_group": K.I_AGE_GROUP,
    "visceral": K.I_VISCERAL,
    "lung": K.I_LUNG,
    "liver": K.I_LIVER,
    "bone": K.I_BONE,
    "sites": K.I_SITES,
    "de_novo": K.I_DENOVO,
    "academic": K.I_ACADEMIC,
    "race": K.I_RACE,
    "pfs_reason": K.I_PFS_REASON,
    "crossover": K.I_XOVER,
    "os_reason": K.I_OS_REASON,
}
POTENTIAL = {"pfs0": K.F_PFS0, "pfs1": K.F_PFS1, "os0": K.F_OS0, "os1": K.F_OS1}

SCENARIOS = {
    "flatiron": lambda: simulator.get_scenario("flatiron"),
    "po25-rct": lambda: simulator.get_scenario("po25-rct"),
    "po25-crossover": lambda: simulator.get_scenario("po25-crossover"),
    "flatiron-liver": lambda: simulator.get_scenario("flatiron-liver"),
    "every-option": sim_scenarios.every_option,
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_kernel_equals_reference_bit_for_bit(name):
    sc = SCENARIOS[name]()
    n = 2 * K.CHUNK + 1234  # three chunks, the last one partial
    arr = simulator.simulate_arrays(sc, n, seed=20240607, potential_outcomes=True)
    ref = cohort_naive(plan_for(sc), n, 20240607, potential=True)
    for key, row in {**FLOATS, **POTENTIAL}.items():
        np.testing.assert_array_equal(arr.floats[row], ref[key], err_msg=key)
    for key, row in INTS.items():
        np.testing.assert_array_equal(arr.ints[row], ref[key].astype(np.int8), err_msg=key)


def test_reference_detects_a_changed_parameter():
    # the oracle is sensitive: one solved parameter nudged by 1e-12 changes the cohort
    sc = sim_scenarios.every_option()
    plan = plan_for(sc)
    arr = simulator.simulate_arrays(sc, 5000, seed=3)
    plan.om[0, 0] *= 1 + 1e-12
    try:
        ref = cohort_naive(plan, 5000, 3)
    finally:
        plan.om[0, 0] /= 1 + 1e-12
    assert not np.array_equal(arr.floats[K.F_PFS], ref["pfs"])
