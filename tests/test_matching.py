"""Greedy 1:k matching, with and without replacement: identical sets to the O(n^2)
reference, weights, properties, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from naive import greedy_match_naive, match_k_naive

from estimators import EstimatorInputError, NoOverlapError
from estimators.matching import ORDERS, match_pairs


@st.composite
def logits_and_arms(draw, grid: bool):
    """Logits on a 1/8 grid (exact differences, many distance ties) or continuous.

    Continuous logits are rounded to 1e-6 so that distinct values are never closer than
    rounding error (the kernel orders such values exactly; the naive scan would see a
    tie in the rounded distances).
    """
    n = draw(st.integers(2, 80))
    if grid:
        logit = draw(arrays(np.int64, n, elements=st.integers(-24, 24))) / 8.0
    else:
        logit = np.round(draw(arrays(np.float64, n, elements=st.floats(-4, 4))), 6)
    a = draw(arrays(np.int64, n, elements=st.integers(0, 1)))
    a[0], a[1] = 1, 0
    return logit, a


def pairs_of(m) -> list[tuple[int, int]]:
    return list(zip(m.treated.tolist(), m.control.tolist(), strict=True))


@given(
    data=logits_and_arms(grid=True) | logits_and_arms(grid=False),
    order=st.sampled_from(ORDERS),
    caliper=st.one_of(st.none(), st.floats(0.01, 3.0)),
    seed=st.integers(0, 1000),
)
def test_identical_pairs_to_naive_greedy(data, order, caliper, seed):
    logit, a = data
    width = np.inf if caliper is None else caliper * np.std(logit, ddof=1)
    expected = greedy_match_naive(logit, a, width, order, seed)
    if not expected:
        with pytest.raises(NoOverlapError):
            match_pairs(logit, a, caliper=caliper, order=order, random_state=seed)
        return
    m = match_pairs(logit, a, caliper=caliper, order=order, random_state=seed)
    assert pairs_of(m) == expected
    assert m.caliper == width


@given(data=logits_and_arms(grid=False), caliper=st.floats(0.05, 1.0), seed=st.integers(0, 99))
def test_pairs_within_caliper_and_no_unit_used_twice(data, caliper, seed):
    logit, a = data
    try:
        m = match_pairs(logit, a, caliper=caliper, random_state=seed)
    except NoOverlapError:
        return
    assert np.all(m.distance <= m.caliper)
    np.testing.assert_array_equal(m.distance, np.abs(logit[m.treated] - logit[m.control]))
    assert np.all(a[m.treated] == 1) and np.all(a[m.control] == 0)
    assert len(set(m.treated.tolist())) == m.n_pairs == len(set(m.control.tolist()))
    assert m.n_pairs + m.n_unmatched == a.sum() == m.n_treated


@given(data=logits_and_arms(grid=False))
def test_without_caliper_every_treated_or_every_control_is_used(data):
    logit, a = data
    m = match_pairs(logit, a, caliper=None, order="data")
    assert m.n_pairs == min(a.sum(), (a == 0).sum())


def test_hand_example_orders_and_ties():
    #            row: 0    1    2     3    4    5
    logit = np.array([0.0, 1.0, 0.5, -0.5, 1.5, 0.5])
    a = np.array([1, 1, 0, 0, 0, 0])
    # row 0 is 0.5 from rows 2, 3 and 5: the smallest row index (2) wins the tie;
    # then row 1 is 0.5 from rows 4 and 5 -> row 4
    assert pairs_of(match_pairs(logit, a, caliper=None, order="data")) == [(0, 2), (1, 4)]
    assert pairs_of(match_pairs(logit, a, caliper=None, order="smallest")) == [(0, 2), (1, 4)]
    # row 1 first: 0.5 from rows 2, 4, 5 -> row 2; then row 0: rows 3 and 5 -> row 3
    assert pairs_of(match_pairs(logit, a, caliper=None, order="largest")) == [(1, 2), (0, 3)]


def test_default_caliper_is_02_sd_of_logit_over_all_patients():
    rng = np.random.default_rng(0)
    logit = rng.normal(size=200)
    a = rng.integers(0, 2, 200)
    m = match_pairs(logit, a)
    assert m.caliper == pytest.approx(0.2 * np.std(logit, ddof=1), rel=1e-15)


def test_random_order_is_seeded_and_accepts_a_generator():
    rng = np.random.default_rng(1)
    logit = rng.normal(size=300)
    a = (rng.random(300) < 0.6).astype(int)
    m1 = match_pairs(logit, a, random_state=7)
    m2 = match_pairs(logit, a, random_state=np.random.default_rng(7))
    m3 = match_pairs(logit, a, random_state=8)
    assert pairs_of(m1) == pairs_of(m2)
    assert pairs_of(m1) != pairs_of(m3)


def test_rows_and_pairs():
    logit = np.array([0.0, 1.0, 0.1, 1.1])
    a = np.array([1, 1, 0, 0])
    rows, pair = match_pairs(logit, a, order="data", caliper=None).rows_and_pairs()
    np.testing.assert_array_equal(rows, [0, 1, 2, 3])
    np.testing.assert_array_equal(pair, [0, 1, 0, 1])


def test_zero_pairs_raise_no_overlap():
    logit = np.array([-3.0, -2.9, 3.0, 2.9, 0.0])
    a = np.array([0, 0, 1, 1, 0])
    with pytest.raises(NoOverlapError, match="zero matched pairs") as err:
        match_pairs(logit, a, caliper=0.2)
    assert isinstance(err.value, ValueError)


LOGIT = np.array([0.0, 1.0, 0.4, 0.9])
A = np.array([1, 1, 0, 0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"caliper": 0.0}, "caliper=0.0 is not allowed"),
        ({"caliper": -0.2}, "caliper=-0.2 is not allowed"),
        ({"caliper": np.nan}, "caliper=nan is not allowed"),
        ({"caliper": np.inf}, "caliper=inf is not allowed"),
        ({"caliper": "0.2"}, "caliper='0.2' is not allowed"),
        ({"caliper": True}, "caliper=True is not allowed"),
        ({"order": "nearest"}, "order='nearest' is not allowed; use one of"),
        ({"random_state": -1}, "random_state=-1 is not allowed"),
        ({"random_state": 1.5}, "random_state=1.5 is not allowed"),
        ({"random_state": None}, "random_state=None is not allowed"),
        ({"ratio": 0}, "ratio=0 is not allowed; use an integer >= 1"),
        ({"ratio": 2.0}, "ratio=2.0 is not allowed"),
        ({"ratio": False}, "ratio=False is not allowed"),
        ({"replace": "no"}, "replace='no' is not allowed; use True or False"),
        ({"replace": None}, "replace=None is not allowed"),
        ({"logit": np.array([0.0, np.nan, 0.4, 0.9])}, "logit must be finite"),
        ({"logit": np.array([0.0, 1.0, 0.4])}, "one value per patient"),
        ({"treatment": np.array([1, 1, 1, 1])}, "single arm"),
        ({"treatment": np.array([1, 1, 0, 3])}, "only 0 and 1"),
    ],
)
def test_bad_input_raises(kwargs, match):
    args = {"logit": LOGIT, "treatment": A} | kwargs
    with pytest.raises(EstimatorInputError, match=match):
        match_pairs(args.pop("logit"), args.pop("treatment"), **args)


@pytest.mark.parametrize("order", ORDERS)
def test_identical_pairs_to_naive_on_a_cohort_sized_problem(order):
    rng = np.random.default_rng(3)
    x = rng.normal(size=500)
    logit = 0.2 + 0.8 * x + 0.1 * rng.integers(0, 4, 500)  # coarse component: exact ties
    a = rng.binomial(1, 1 / (1 + np.exp(-logit)))
    m = match_pairs(logit, a, order=order, random_state=5)
    assert pairs_of(m) == greedy_match_naive(logit, a, m.caliper, order, 5)
    assert 0 < m.n_unmatched < m.n_treated  # the caliper binds for some treated patients


def sets_of(m) -> list[tuple[int, list[int]]]:
    """(treated row, [control rows in the order taken]) of each matched set."""
    return [
        (int(m.treated[m.set_id == s][0]), m.control[m.set_id == s].tolist())
        for s in range(m.n_sets)
    ]


@given(
    data=logits_and_arms(grid=True) | logits_and_arms(grid=False),
    order=st.sampled_from(ORDERS),
    caliper=st.one_of(st.none(), st.just(0.2), st.floats(0.01, 3.0)),
    ratio=st.sampled_from([1, 2, 5]),
    replace=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_identical_sets_to_naive_for_every_ratio_and_replacement(
    data, order, caliper, ratio, replace, seed
):
    logit, a = data
    width = np.inf if caliper is None else caliper * np.std(logit, ddof=1)
    expected = match_k_naive(logit, a, width, order, seed, ratio, replace)
    kw = dict(caliper=caliper, order=order, random_state=seed, ratio=ratio, replace=replace)
    if not expected:
        with pytest.raises(NoOverlapError):
            match_pairs(logit, a, **kw)
        return
    m = match_pairs(logit, a, **kw)
    assert sets_of(m) == expected
    assert (m.ratio, m.replace, m.caliper) == (ratio, replace, width)
    np.testing.assert_array_equal(m.distance, np.abs(logit[m.treated] - logit[m.control]))
    assert np.all(m.distance <= width) and np.all(m.set_size <= ratio)
    assert m.n_sets + m.n_unmatched == a.sum()
    if not replace:
        assert len(set(m.control.tolist())) == m.n_pairs


@pytest.mark.parametrize(
    ("ratio", "replace"), [(1, False), (2, False), (5, False), (1, True), (2, True), (5, True)]
)
@pytest.mark.parametrize("caliper", [None, 0.2])
@pytest.mark.parametrize("order", ORDERS)
def test_identical_sets_to_naive_on_a_cohort_sized_problem(ratio, replace, caliper, order):
    rng = np.random.default_rng(4)
    x = rng.normal(size=300)
    logit = 0.2 + 0.8 * x + 0.1 * rng.integers(0, 4, 300)
    a = rng.binomial(1, 1 / (1 + np.exp(-logit + 0.6)))  # ~48% treated
    m = match_pairs(
        logit, a, caliper=caliper, order=order, random_state=2, ratio=ratio, replace=replace
    )
    assert sets_of(m) == match_k_naive(logit, a, m.caliper, order, 2, ratio, replace)
    if ratio > 1 and (caliper is not None or not replace):  # the caliper or the supply binds
        assert m.set_size.min() < ratio


def test_hand_example_one_to_two_rounds_and_replacement_ties():
    #            row: 0    1    2     3    4    5    6
    logit = np.array([0.0, 1.0, 0.5, -0.5, 1.5, 0.5, 3.0])
    a = np.array([1, 1, 0, 0, 0, 0, 0])
    # rounds: row 0 takes 2 (0.5 from 2, 3, 5: smallest row); row 1 takes 4 (0.5 from
    # 4, 5); round 2: row 0 takes 3 (0.5 from 3, 5), row 1 takes 5
    m = match_pairs(logit, a, caliper=None, order="data", ratio=2)
    assert sets_of(m) == [(0, [2, 3]), (1, [4, 5])]
    # with order "largest" row 1 goes first in each round: 2, then row 0: 3; then 4, 5
    m = match_pairs(logit, a, caliper=None, order="largest", ratio=2)
    assert sets_of(m) == [(1, [2, 4]), (0, [3, 5])]
    # with replacement each takes its 2 nearest, ties by row: row 0 -> 2, 3; row 1 -> 2, 4
    m = match_pairs(logit, a, caliper=None, order="data", ratio=2, replace=True)
    assert sets_of(m) == [(0, [2, 3]), (1, [2, 4])]
    assert m.n_controls == 3


def test_rounds_differ_from_treated_by_treated():
    # rounds (MatchIt): row 0 -> 2, row 1 -> 3, then row 0 -> 4; treated-by-treated would
    # give row 0 both near controls (2, 3) and row 1 the far one (4)
    logit = np.array([0.0, 0.3, 0.1, 0.2, 5.0])
    a = np.array([1, 1, 0, 0, 0])
    m = match_pairs(logit, a, caliper=None, order="data", ratio=2)
    assert sets_of(m) == match_k_naive(logit, a, np.inf, "data", 0, 2, False)
    assert sets_of(m) == [(0, [2, 4]), (1, [3])]


def test_matchit_weights():
    logit = np.array([0.0, 1.0, 0.1, 0.2, 1.1, 5.0])
    a = np.array([1, 1, 0, 0, 0, 0])
    # with replacement, no caliper, 1:2: row 0 -> 2, 3; row 1 -> 4, 3
    m = match_pairs(logit, a, caliper=None, order="data", ratio=2, replace=True)
    assert sets_of(m) == [(0, [2, 3]), (1, [4, 3])]
    rows, sets = m.rows_and_pairs()
    np.testing.assert_array_equal(rows, [0, 1, 2, 3, 4, 3])
    np.testing.assert_array_equal(sets, [0, 1, 0, 0, 1, 1])
    scale = 3 / 2  # distinct controls / sets
    np.testing.assert_allclose(m.row_weights(), [1, 1, scale / 2, scale / 2, scale / 2, scale / 2])
    w = m.unit_weights(6)
    np.testing.assert_allclose(w, [1, 1, 0.75, 1.5, 0.75, 0])
    assert w[a == 0].sum() == pytest.approx(m.n_controls)
    # without replacement, variable k: the caliper (0.1 SD = 0.35) gives row 0 rows 2 and
    # 3, row 1 only row 4 (row 5 is too far)
    m = match_pairs(np.array([0.0, 1.0, 0.1, 0.2, 1.1, 9.0]), a, caliper=0.1, order="data", ratio=2)
    assert sets_of(m) == [(0, [2, 3]), (1, [4])]
    np.testing.assert_allclose(m.unit_weights(6), [1, 1, 0.75, 0.75, 1.5, 0])


@given(data=logits_and_arms(grid=True), ratio=st.sampled_from([1, 2, 5]), replace=st.booleans())
def test_control_weights_sum_to_distinct_controls(data, ratio, replace):
    logit, a = data
    m = match_pairs(logit, a, caliper=None, ratio=ratio, replace=replace)
    w = m.unit_weights(a.size)
    assert np.all(w[m.set_treated] == 1.0) and w[a == 1].sum() == m.n_sets
    assert w[a == 0].sum() == pytest.approx(m.n_controls, rel=1e-12)
    if ratio == 1 and not replace:
        assert set(w.tolist()) <= {0.0, 1.0}


@given(
    values=arrays(np.float64, st.integers(1, 60), elements=st.floats(-50, 50))
    | arrays(np.int64, st.integers(1, 60), elements=st.integers(-8, 8)).map(lambda v: v / 8.0),
    queries=arrays(np.float64, st.integers(1, 20), elements=st.floats(-60, 60)),
)
def test_bucket_lower_bound_equals_searchsorted(values, queries):
    from estimators._matching_kernels import _bucket_index, _lower_bound

    x = np.sort(values)
    first = _bucket_index(x)
    for q in np.r_[queries, x, np.nextafter(x, np.inf), np.nextafter(x, -np.inf)]:
        assert _lower_bound(x, first, q) == np.searchsorted(x, q)
