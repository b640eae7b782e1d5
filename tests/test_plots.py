"""Study figures: what is drawn is checked against quantities computed here from the data
(synthetic results tables, no simulation), plus one small real study run end to end."""

import math
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.patches import StepPatch

from simulator.study import plots
from simulator.study.performance import summarize

ESTIMATORS = {"siptw": "ATE", "psm": "ATT", "naive_cox": "crude", "adjusted_cox": "conditional"}
TRUE = {"conditional": -0.50, "ATE": -0.45, "ATT": -0.40}
Z = 1.959963984540054


def make_results(conditions=(0, 1), reps=50, seed=1, estimators=ESTIMATORS, sd=0.12, se=0.1):
    """Wald estimates scattered around each estimator's truth (crude scored vs the ATE)."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in conditions:
        for rep in range(reps):
            for outcome in ("pfs", "os"):
                for est, estimand in estimators.items():
                    theta = TRUE.get(estimand, TRUE["ATE"]) + 0.01 * c
                    b = theta + rng.normal(0, sd)
                    rows.append((c, rep, outcome, est, estimand, b, se, b - Z * se, b + Z * se))
    columns = "condition rep outcome estimator estimand estimate se ci_low ci_high".split()
    df = pd.DataFrame(rows, columns=columns)
    df["measure"] = "log_hr"
    df["horizon"] = np.nan
    df["p_value"] = 0.01
    df["converged"] = True
    return df


def make_truths(conditions=(0, 1)):
    rows = [
        (c, o, e, "log_hr", np.nan, TRUE[e] + 0.01 * c, 1e-4)
        for c in conditions
        for o in ("pfs", "os")
        for e in ("conditional", "ATE", "ATT")
    ]
    return pd.DataFrame(rows, columns=[*plots.TRUTH_COLUMNS, "theta_mcse"])


def meta_conditions(grid):
    """run.json-like condition entries for (index, strength, n) triples."""
    return [
        {
            "index": i,
            "label": f"flatiron, n={n}, treatment.strength={s}",
            "scenario": "flatiron",
            "n": n,
            "factors": {"treatment.strength": s},
        }
        for i, s, n in grid
    ]


def theta_of(c, estimand):
    return TRUE[{"crude": "ATE"}.get(estimand, estimand)] + 0.01 * c


def by_gid(ax, gid, kind=None):
    artists = [a for a in ax.get_children() if a.get_gid() == gid]
    return [a for a in artists if kind is None or isinstance(a, kind)]


def without(df, mask):
    return df[~mask].reset_index(drop=True)


# ---- figures are standalone Agg figures --------------------------------------------------
def test_no_pyplot_state_and_agg_canvas():
    res, tr = make_results(), make_truths()
    before = plt.get_fignums()
    figs = [
        plots.estimate_distributions(res, tr, [0, 1], "pfs"),
        plots.zip_plot(res, tr, 0, "os"),
        plots.nested_loop_plot(
            summarize(res, tr), meta_conditions([(0, 1.0, 500), (1, 2.0, 500)]), "bias", "pfs"
        ),
    ]
    assert plt.get_fignums() == before
    for fig in figs:
        assert isinstance(fig.canvas, FigureCanvasAgg) and fig.dpi == plots.DPI


# ---- 1. distributions --------------------------------------------------------------------
def test_distributions_panels_truths_and_points():
    res, tr = make_results(conditions=(0, 1, 2)), make_truths(conditions=(0, 1, 2))
    fig = plots.estimate_distributions(res, tr, meta_conditions([(2, 1, 1), (0, 1, 1)]), "os")
    assert len(fig.axes) == 2  # one panel per condition asked for, in the order asked
    for ax, c in zip(fig.axes, (2, 0), strict=True):
        assert ax.get_title() == "flatiron, n=1, treatment.strength=1"
        for e in ("conditional", "ATE", "ATT"):
            (line,) = by_gid(ax, f"truth:{e}")
            assert line.get_ydata()[0] == pytest.approx(theta_of(c, e))
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert [lab.split("\n")[0] for lab in labels] == [
            "sIPTW",
            "PSM",
            "naive Cox",
            "adjusted Cox",
        ]
        for i, (est, estimand) in enumerate(ESTIMATORS.items()):
            (own,) = by_gid(ax, f"own-truth:{est}")
            (seg,) = own.get_segments()
            assert seg[:, 1] == pytest.approx([theta_of(c, estimand)] * 2)
            assert seg[:, 0].min() < i < seg[:, 0].max()  # drawn across its own violin
            colour = plots.ESTIMAND_COLOURS[{"crude": "ATE"}.get(estimand, estimand)]
            assert tuple(own.get_colors()[0]) == to_rgba(colour)
        points = [c.get_offsets() for c in ax.collections if c.get_gid() is None]
        sizes = sorted(len(p) for p in points if len(p) > 1)
        assert sizes == [50] * 4  # every replicate is a point
        assert ax.get_xlabel() == "fits: all usable"


def test_distributions_leave_out_failed_draw_nonconverged_and_say_so():
    """The figures use the performance table's default denominator: finite estimates,
    converged or not; failed fits are left out; both are counted in the figure."""
    res, tr = make_results(conditions=(0,)), make_truths(conditions=(0,))
    pfs = res["outcome"] == "pfs"
    failed = pfs & (res["estimator"] == "psm") & (res["rep"] < 2)
    res.loc[failed, ["estimate", "se"]] = np.nan
    nonconv = pfs & (res["estimator"] == "siptw") & (res["rep"] >= 47)
    res.loc[nonconv, "converged"] = False
    res.loc[nonconv, "estimate"] = 4.0  # finite: drawn (and in the bias)
    fig = plots.estimate_distributions(res, tr, [0], "pfs")
    (ax,) = fig.axes
    note = " ".join(ax.get_xlabel().split())
    assert "PSM: 2 failed (left out)" in note and "sIPTW: 3 not converged (drawn)" in note
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0].endswith("50 reps") and labels[1].endswith("48 reps")
    # n= means patients in titles; crude says which truth it is scored against
    assert labels[2] == "naive Cox\ncrude (scored vs ATE)\n50 reps"
    assert ax.get_ylim()[1] > 4  # the non-converged 4.0 is drawn


def test_distributions_unknown_estimator_and_single_fit():
    res = make_results(conditions=(0,), reps=1, estimators={"my_method": "ATE", "psm": "ATT"})
    fig = plots.estimate_distributions(res, make_truths((0,)), [0], "pfs")
    labels = [t.get_text().split("\n")[0] for t in fig.axes[0].get_xticklabels()]
    assert labels == ["PSM", "my_method"]  # known names first, unknown ones as they are


# ---- 2. zip plot -------------------------------------------------------------------------
def direct_coverage(res, c, outcome, est):
    g = res[(res.condition == c) & (res.outcome == outcome) & (res.estimator == est)]
    g = g[np.isfinite(g.estimate) & np.isfinite(g.se)]  # the default denominator
    theta = theta_of(c, ESTIMATORS[est])
    cover = ((g.ci_low <= theta) & (theta <= g.ci_high)).to_numpy()
    return g, cover, theta


@pytest.mark.parametrize("outcome", ["pfs", "os"])
def test_zip_plot_lines_colours_ranks_and_coverage(outcome):
    # sd 0.16 with model SE 0.1: coverage well below 95%, so both colours occur
    res, tr = make_results(conditions=(0, 1), reps=80, sd=0.16), make_truths()
    res.loc[(res.estimator == "psm") & (res.rep < 3), "estimate"] = np.nan
    res.loc[(res.estimator == "siptw") & (res.rep < 5), "converged"] = False
    fig = plots.zip_plot(res, tr, {"index": 1, "label": "cond one"}, outcome)
    assert len(fig.axes) == 4 and "cond one" in fig.get_suptitle()
    for ax, est in zip(fig.axes, ESTIMATORS, strict=True):
        g, cover, theta = direct_coverage(res, 1, outcome, est)
        (covering,) = by_gid(ax, "covering", LineCollection)
        (missing,) = by_gid(ax, "missing", LineCollection)
        assert len(covering.get_segments()) == cover.sum() > 0
        assert len(missing.get_segments()) == (~cover).sum() > 0
        assert tuple(covering.get_colors()[0]) == to_rgba(plots.COVER_COLOUR)
        assert tuple(missing.get_colors()[0]) == to_rgba(plots.MISS_COLOUR)
        # each line spans its replicate's CI; heights are the centiles k/n of |z|
        segs = np.array(covering.get_segments() + missing.get_segments())
        lo_hi = np.sort(np.c_[g.ci_low, g.ci_high], axis=0)
        assert np.sort(segs[:, :, 0], axis=0) == pytest.approx(lo_hi)
        heights = segs[:, 0, 1]
        n = len(g)
        assert np.sort(heights) == pytest.approx(100 * np.arange(1, n + 1) / n)
        # Wald CIs: the covering ones are exactly the smaller |z| ranks
        assert max(s[0, 1] for s in covering.get_segments()) == pytest.approx(100 * cover.mean())
        c = cover.mean()
        # Wilson interval, computed here from its closed form
        centre = (c + Z**2 / (2 * n)) / (1 + Z**2 / n)
        half = Z / (1 + Z**2 / n) * math.sqrt(c * (1 - c) / n + Z**2 / (4 * n**2))
        title = ax.get_title()
        assert f"coverage {100 * c:.1f}%" in title
        assert f"MC 95% CI {100 * (centre - half):.1f} to {100 * (centre + half):.1f}" in title
        assert f"{n} reps" in title and "n=" not in title
        (vline,) = by_gid(ax, "theta")
        assert vline.get_xdata()[0] == pytest.approx(theta)
        (h95,) = by_gid(ax, "centile95")
        assert h95.get_ydata()[0] == 95
    assert "3 failed (left out)" in fig.axes[1].get_title()
    assert "5 not converged (drawn)" in fig.axes[0].get_title()
    assert "naive Cox (crude scored vs ATE)" in fig.axes[2].get_title()


def test_zip_plot_all_failed_estimator_says_so():
    res, tr = make_results(conditions=(0,), reps=10), make_truths((0,))
    res.loc[res.estimator == "psm", "estimate"] = np.nan
    fig = plots.zip_plot(res, tr, 0, "pfs")
    assert fig.axes[1].get_title().startswith("PSM (ATT), no usable fits; 10 failed (left out)")
    assert not by_gid(fig.axes[1], "covering")


# ---- 3. nested-loop plot -----------------------------------------------------------------
GRID = [(0, 2.0, 1430), (1, 1.0, 1430), (2, 2.0, 500), (3, 1.0, 500), (4, 0.5, 500)]


def nested(measure="bias", order=None, outcome="pfs", edit=None):
    res, tr = make_results(conditions=range(5), reps=30), make_truths(range(5))
    if edit is not None:
        edit(res)
    summary = summarize(res, tr)
    fig = plots.nested_loop_plot(summary, meta_conditions(GRID), measure, outcome, order=order)
    return fig, summary[summary.outcome == outcome]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (None, [4, 3, 1, 2, 0]),  # scenario (constant), strength, then n
        (["n"], [4, 3, 2, 1, 0]),  # n outermost, then strength
    ],
)
def test_nested_loop_order_and_factor_lines(order, expected):
    fig, summary = nested(order=order)
    main, *factor_axes = fig.axes
    assert len(factor_axes) == 2  # scenario takes one level: in the title, not a line
    assert "scenario=flatiron" in fig.get_suptitle()
    ticks = [int(t.get_text()) for t in factor_axes[-1].get_xticklabels()]
    assert ticks == expected
    by_index = {i: (s, n) for i, s, n in GRID}
    names = ["treatment.strength", "n"] if order is None else ["n", "treatment.strength"]
    for ax, name in zip(factor_axes, names, strict=True):
        (step,) = by_gid(ax, f"factor:{name}", StepPatch)
        values = [by_index[i][0 if name == "treatment.strength" else 1] for i in expected]
        levels = sorted(set(values))
        assert list(step.get_data().values) == [levels.index(v) for v in values]
        assert [t.get_text() for t in ax.get_yticklabels()] == [f"{v:g}" for v in levels]
    # measure lines follow the same order; error bars are +-1.96 MCSE
    for est in ESTIMATORS:
        g = summary[summary.estimator == est].set_index("condition").loc[expected]
        (line,) = by_gid(main, f"measure:{est}", StepPatch)
        assert line.get_data().values == pytest.approx(g["bias"].to_numpy())
        (bars,) = by_gid(main, f"mcse:{est}", LineCollection)
        halves = [abs(s[1, 1] - s[0, 1]) / 2 for s in bars.get_segments()]
        assert halves == pytest.approx(Z * g["bias_mcse"].to_numpy())
    (ref,) = by_gid(main, "reference")
    assert ref.get_ydata()[0] == 0.0


def test_nested_loop_coverage_reference_labels_and_exclusions():
    fig, _ = nested("coverage", outcome="os")
    (ref,) = by_gid(fig.axes[0], "reference")
    assert ref.get_ydata()[0] == 0.95
    assert fig.axes[0].get_ylabel() == "coverage of the 95% CI"
    assert "OS" in fig.get_suptitle()
    assert fig.axes[0].get_title(loc="left").endswith("fits: all usable")

    def spoil(res):  # 2 failed PSM fits in each of 2 conditions, 1 non-converged sIPTW fit
        res.loc[(res.estimator == "psm") & (res.rep < 2) & (res.condition < 2), "se"] = np.nan
        res.loc[(res.estimator == "siptw") & (res.rep == 0) & (res.condition == 4), "converged"] = (
            False
        )

    fig, summary = nested("coverage", outcome="os", edit=spoil)
    note = " ".join(fig.axes[0].get_title(loc="left").split())  # the note may be wrapped
    assert note.endswith("fits: sIPTW 1 not converged (drawn); PSM 4 failed (left out)")
    assert summary["n_failed"].sum() == 4 and summary["n_nonconverged"].sum() == 1
    assert "Wilson" in note


# ---- bad input ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data():
    res, tr = make_results(), make_truths()
    return res, tr, summarize(res, tr), meta_conditions([(0, 1.0, 500), (1, 2.0, 500)])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda r, t, s, m: plots.estimate_distributions(r, t, m, "dfs"),
            r"outcome='dfs'.*'os', 'pfs'",
        ),
        (lambda r, t, s, m: plots.zip_plot(r, t, 0, "PFS"), r"outcome='PFS'.*'os', 'pfs'"),
        (lambda r, t, s, m: plots.nested_loop_plot(s, m, "bias", "x"), r"outcome='x'.*'os', 'pfs'"),
        (
            lambda r, t, s, m: plots.estimate_distributions(r, t, [0, 7], "pfs"),
            r"conditions\[1\]=7 is not allowed.*\[0, 1\]",
        ),
        (
            lambda r, t, s, m: plots.zip_plot(r, t, 7, "pfs"),
            r"^condition=7 is not allowed.*\[0, 1\]",
        ),
        (lambda r, t, s, m: plots.zip_plot(r, t, {"index": 9}, "pfs"), r"condition=9"),
        (lambda r, t, s, m: plots.zip_plot(r, t, "0", "pfs"), r"condition='0'"),
        (
            lambda r, t, s, m: plots.nested_loop_plot(s, [*m, {"index": 5}], "bias", "pfs"),
            r"conditions\[2\]=5",
        ),
        (
            lambda r, t, s, m: plots.nested_loop_plot(s, m, "biass", "pfs"),
            r"measure='biass'.*'coverage'",
        ),
        (lambda r, t, s, m: plots.nested_loop_plot(s, m, "n_sim", "pfs"), r"measure='n_sim'"),
        (lambda r, t, s, m: plots.nested_loop_plot(s, m, order=["size"]), r"order\[\]='size'.*'n'"),
        (
            lambda r, t, s, m: plots.nested_loop_plot(s, [], "bias"),
            r"conditions must be a non-empty",
        ),
        (lambda r, t, s, m: plots.estimate_distributions(r, t, [], "pfs"), r"conditions=\[\]"),
        (
            lambda r, t, s, m: plots.zip_plot(r.drop(columns="se"), t, 0, "pfs"),
            r"results is missing.*'se'",
        ),
        (
            lambda r, t, s, m: plots.zip_plot(r, t.drop(columns="theta"), 0, "pfs"),
            r"truths is missing.*'theta'",
        ),
        (
            lambda r, t, s, m: plots.nested_loop_plot(s.drop(columns="bias_mcse"), m),
            r"summary is missing.*'bias_mcse'",
        ),
        (
            lambda r, t, s, m: plots.zip_plot(r.to_dict(), t, 0, "pfs"),
            r"results must be a pandas DataFrame",
        ),
    ],
)
def test_bad_input_raises_value_error_naming_the_parameter(data, call, match):
    with pytest.raises(ValueError, match=match):
        call(*data)


def test_coverage_error_bars_are_wilson_and_stay_within_0_and_1():
    """Every CI covers: coverage 1, where p +- 1.96 MCSE would be a zero-width bar and a
    coverage of 0.98 would reach above 1; the Wilson interval is below 1 and not empty."""

    def cover_all(res):
        res["ci_low"], res["ci_high"] = res["estimate"] - 10, res["estimate"] + 10

    fig, summary = nested("coverage", edit=cover_all)
    for est in ESTIMATORS:
        (bars,) = by_gid(fig.axes[0], f"mcse:{est}", LineCollection)
        for seg in bars.get_segments():
            lo, hi = sorted(seg[:, 1])
            n = 30
            assert hi == pytest.approx(1.0) and lo == pytest.approx(n / (n + Z**2))
    assert (summary["coverage"] == 1.0).all()


def test_other_effect_measures_are_drawn_against_their_own_truth():
    res, tr = make_results(conditions=(0,)), make_truths(conditions=(0,))
    rmst = res.copy()
    rmst["measure"], rmst["horizon"] = "rmst_diff", 24.0
    rmst["estimate"] += 3.0
    rmst["ci_low"] += 3.0
    rmst["ci_high"] += 3.0
    t2 = tr.copy()
    t2["measure"], t2["horizon"], t2["theta"] = "rmst_diff", 24.0, t2["theta"] + 3.0
    both, truths = pd.concat([res, rmst]), pd.concat([tr, t2])
    fig = plots.zip_plot(both, truths, 0, "pfs", measure="rmst_diff", horizon=24.0)
    (vline,) = by_gid(fig.axes[0], "theta")
    assert vline.get_xdata()[0] == pytest.approx(theta_of(0, "ATE") + 3.0)
    assert "RMST difference (months) at 24 months" in fig.axes[-1].get_xlabel()
    fig = plots.estimate_distributions(both, truths, [0], "pfs")  # default: log-HR
    (line,) = by_gid(fig.axes[0], "truth:ATE")
    assert line.get_ydata()[0] == pytest.approx(theta_of(0, "ATE"))
    with pytest.raises(ValueError, match=r"horizon=12.*\[24.0\]"):
        plots.zip_plot(both, truths, 0, "pfs", measure="rmst_diff", horizon=12)


# ---- 4. a real study, end to end ---------------------------------------------------------
@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    from simulator.study.runner import run_study
    from simulator.study.spec import Study

    out = tmp_path_factory.mktemp("study")
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # separation / divergence warnings of small samples
        mp.setenv("RWESIM_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        run_study(
            Study(reps=10, chunk_reps=10, sample_sizes=(300, 500)), out, workers=1, progress=False
        )
    return out


def test_plot_study_writes_every_png(study_dir, tmp_path):
    paths = plots.plot_study(study_dir, tmp_path / "png")
    names = {p.name for p in paths}
    expected = {
        f"{o}-{kind}.png"
        for o in ("pfs", "os")
        for kind in ("distributions", "zip-c0000", "zip-c0001", "nested-bias", "nested-coverage")
    }
    assert names == expected and len(paths) == len(expected)
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_plot_study_refuses_a_directory_without_results(tmp_path):
    with pytest.raises(ValueError, match=r"run\.json is unreadable"):
        plots.plot_study(tmp_path, tmp_path / "png")


def test_the_facade_imports_one_thing_and_plots_into_the_results_directory(study_dir):
    import simulator.study as study_api
    from simulator.study import Study, open_results, plot, run_study, summarize

    assert run_study is study_api.runner.run_study and Study is study_api.spec.Study
    store = open_results(study_dir)
    assert len(store.read_results()) == 2 * 10 * 2 * 4
    table = summarize(study_dir)
    assert set(table["estimator"]) == {"siptw", "psm", "naive_cox", "adjusted_cox"}
    assert (table["denominator"] == "finite").all() and "n_converged" in table
    paths = plot(study_dir)
    assert paths and all(p.parent == study_dir / "plots" for p in paths)
    with pytest.raises(ValueError, match="not an rwesim results directory"):
        open_results(study_dir / "plots")
