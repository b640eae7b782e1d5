"""A vectorisable ``exp`` for the estimators' numba kernels (private).

exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 (Cody-Waite, fdlibm's split of
ln 2), exp(r) by its Taylor polynomial of degree 13 (|r| <= 0.347: truncation 4e-18
relative) with fused multiply-adds, 2^n assembled in the exponent bits.  Branch-free, so
LLVM vectorises the loop, where numba's ``math.exp`` is one scalar libm call per value.
Within 1 ulp of libm for x <= 0 (the arguments of survival functions); x below -708
gives 0.  x > 0 is not supported (no overflow handling).

The cohort core has the same function (``simulator._exact_kernels._exp_into``): the
dependency rule (docs/design.md §6) keeps the two packages from importing each other, so
each carries its copy, and a test holds them equal bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SHIFT = 6755399441055744.0  # 1.5 * 2^52: adding it rounds to an integer in the low bits
_SHIFT_BITS = 0x4338000000000000
_EXP_LO = -708.0
_INV_FACT = np.array([1.0 / math.factorial(j) for j in range(14)])


@njit(cache=True, fastmath={"contract"})
def _exp_into(x, out, work):
    """out[k] = exp(x[k]) for k < x.size (x, out, work float64 arrays of that size at
    least; out may be x; work is scratch)."""
    m = x.size
    c = _INV_FACT
    c0, c1, c2, c3, c4, c5, c6 = c[0], c[1], c[2], c[3], c[4], c[5], c[6]
    c7, c8, c9, c10, c11, c12, c13 = c[7], c[8], c[9], c[10], c[11], c[12], c[13]
    for k in range(m):
        xk = max(x[k], _EXP_LO)
        kd = xk * _LOG2E + _SHIFT
        work[k] = kd
        n = kd - _SHIFT
        r = (xk - n * _LN2_HI) - n * _LN2_LO
        p = c13 * r + c12
        p = p * r + c11
        p = p * r + c10
        p = p * r + c9
        p = p * r + c8
        p = p * r + c7
        p = p * r + c6
        p = p * r + c5
        p = p * r + c4
        p = p * r + c3
        p = p * r + c2
        p = p * r + c1
        p = p * r + c0
        out[k] = p if x[k] >= _EXP_LO else 0.0
    bits = work[:m].view(np.int64)
    for k in range(m):
        bits[k] = (bits[k] - _SHIFT_BITS + 1023) << 52
    for k in range(m):
        out[k] *= work[k]
