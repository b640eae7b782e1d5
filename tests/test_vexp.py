"""The estimators' vectorised exp (estimators/_vexp.py) is the cohort core's twin.

The dependency rule keeps ``estimators`` and the cohort core from importing each other,
so each package carries its own copy of the branch-free exp; these tests hold the copies
equal bit for bit and within 1 ulp of numpy's exp over survival-function arguments
(x <= 0, edges included).
"""

import math

import numpy as np

from estimators import _vexp
from simulator import _exact_kernels as XK


def arguments() -> np.ndarray:
    rng = np.random.default_rng(11)
    return np.concatenate(
        [
            -rng.exponential(20.0, 50_000),
            -rng.uniform(0.0, 1e-8, 5_000),
            rng.uniform(-708.0, 0.0, 50_000),
            [0.0, -0.0, -1e-300, -707.9, -708.0, math.log(0.25), -708.1, -1e4],
        ]
    )


def test_the_two_copies_agree_bit_for_bit():
    x = arguments()
    a, b, work = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    _vexp._exp_into(x, a, work)
    XK._exp_into(x, b, work)
    np.testing.assert_array_equal(a.view(np.int64), b.view(np.int64))


def test_within_one_ulp_of_numpy_and_zero_below_the_cutoff():
    x = arguments()
    out, work = np.empty_like(x), np.empty_like(x)
    _vexp._exp_into(x, out, work)
    ok = x >= _vexp._EXP_LO
    ref = np.exp(x[ok])
    assert (np.abs(out[ok] - ref) / np.spacing(ref)).max() <= 1.0
    assert (out[~ok] == 0.0).all()
