"""The ``rwesim`` command line.

User errors (unknown scenario, bad parameter, unreadable file, ...) print one line on
stderr and exit with status 2, without a traceback.  Anything else is a bug in rwesim: it
is reported as an internal error with its full traceback and exit status 1.  Ctrl-C exits
with status 130.
"""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import sys
import tomllib
import traceback
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from estimators.exceptions import EstimatorInputError

from .. import calibration
from ..catalog import BUILTIN, get_scenario, resolve_scenario
from ..exceptions import ScenarioError
from ..generate import check_size
from ..generate import simulate as simulate_cohort
from ..scenario import Scenario
from ..streams import as_seed_sequence
from .exceptions import StudyError
from .kinds import KINDS, GenericKind, get_kind
from .report import summary_markdown, summary_rich, summary_table
from .runner import parse_shard, run_study
from .spec import Study, load_study, study_from_dict
from .store import Store

app = typer.Typer(
    name="rwesim",
    help="Synthetic HR+/HER2- MBC cohorts with known effects, and a benchmark of RWE estimators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output (files, CI logs) gets a wide console instead of rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

ScenarioArg = Annotated[
    str, typer.Argument(help="A built-in scenario name (see `rwesim scenarios`) or a TOML file.")
]


class UserError(Exception):
    """An error the user can fix: reported in one line, exit status 2."""


class TruthCensoring(StrEnum):
    """Which censoring the marginal truths of a study are computed under."""

    admin = "admin"
    study = "study"


# The project's user errors: one line on stderr, exit status 2.  Anything else is a bug.
USER_ERRORS = (
    ScenarioError,  # incl. CalibrationError
    StudyError,  # incl. StoreError
    EstimatorInputError,  # incl. SeparationError, NoOverlapError
    UserError,
    tomllib.TOMLDecodeError,
)
# File-system errors the user can fix (a wrong path, permissions, a full or read-only disk).
FILE_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)
FILE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENAMETOOLONG})


# typer's own exits and usage errors pass through (recent typer vendors click: import
# nothing from click: it may not be installed).
_PASS_THROUGH = (typer.Exit, typer.Abort, getattr(typer, "TyperException", typer.BadParameter))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _file_error(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    return f"{where}: {exc.strerror}" if where and exc.strerror else str(exc)


def _is_file_error(exc: BaseException) -> bool:
    return isinstance(exc, FILE_ERRORS) or (isinstance(exc, OSError) and exc.errno in FILE_ERRNOS)


def user_errors(func=None, *, interrupted: str = ""):
    """Report the project's user errors in one line (exit 2) and anything else as an internal
    error with its traceback (exit 1).  Ctrl-C prints "interrupted" (and the ``interrupted``
    hint) and exits 130."""
    if func is None:
        return functools.partial(user_errors, interrupted=interrupted)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except _PASS_THROUGH:
            raise
        except USER_ERRORS as exc:
            _fail(_one_line(exc), 2)
        except OSError as exc:
            if not _is_file_error(exc):
                _internal(exc)
            _fail(_one_line(_file_error(exc)), 2)
        except KeyboardInterrupt:
            err.print("interrupted" + (f"; {interrupted}" if interrupted else ""), highlight=False)
            raise typer.Exit(130) from None
        except Exception as exc:
            _internal(exc)

    return wrapper


def _fail(message: str, status: int) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(status)


def _internal(exc: BaseException) -> None:
    """A bug in rwesim (or below it): the full traceback, and exit status 1."""
    try:
        where = f"rwesim {version('rwesim')}, Python {sys.version.split()[0]}"
    except PackageNotFoundError:  # run from a source tree that is not installed
        where = f"rwesim from source, Python {sys.version.split()[0]}"
    sys.stderr.write(
        "internal error — please report it to the rwesim developers with the traceback below "
        f"({where})\n"
    )
    traceback.print_exception(exc, file=sys.stderr)
    raise typer.Exit(1)


def _version(value: bool) -> None:
    if value:
        out.print(f"rwesim {version('rwesim')}")
        raise typer.Exit()


@app.callback()
def main(
    _version_flag: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """rwesim: simulate cohorts, compute true estimands, run simulation studies."""


@app.command()
@user_errors
def scenarios() -> None:
    """List the built-in scenarios with a one-line description."""
    table = Table(show_header=True, header_style="bold", box=None)
    table.add_column("scenario")
    table.add_column("description", overflow="fold")
    for name in BUILTIN:
        table.add_row(name, get_scenario(name).description)
    for name in KINDS:
        table.add_row(name, KINDS[name]().description)
    out.print(table)


@app.command()
@user_errors
def show(
    scenario: ScenarioArg,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON.")] = False,
    toml: Annotated[bool, typer.Option("--toml", help="Print the scenario as TOML.")] = False,
) -> None:
    """Show a scenario's parameters, its calibration and its computed true estimands."""
    if as_json and toml:
        raise UserError("--json and --toml are not allowed together; pick one")
    kind = get_kind(scenario)
    if isinstance(kind, GenericKind):  # a generic scenario: parameters and its truths
        _show_generic(kind, as_json, toml)
        return
    if kind is not None:  # another scenario kind: what the runner knows of it
        if toml:
            raise UserError(f"--toml is not allowed for the scenario kind {kind.name!r}")
        _show_kind(kind, as_json)
        return
    sc = resolve_scenario(scenario)
    if toml:
        sys.stdout.write(sc.to_toml())
        return
    cal = _calibrated(sc)
    from .truth import truth

    with err.status(f"true estimands of {sc.name!r} (computed once, then cached)"):
        tr = truth(sc)
    if as_json:
        doc = {
            "scenario": sc.name,
            "description": sc.description,
            "truth": {o: tr[o].to_dict() for o in tr.outcomes},  # + response if any
            "truth_population": tr.population,
            "truth_method": tr.method,
            "calibration": cal.to_json(),
            "parameters": sc.to_dict(),
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    _print_show(sc, cal, tr)


def _kind_truths(kind) -> list[dict]:
    """Every (outcome, estimand, measure, horizon, censoring) the kind's truth holds, asked
    through the runner's interface (``truth().estimand``); horizons: the truth's own."""
    from estimators.estimands import ESTIMANDS, MEASURES, MEASURES_WITH_HORIZON

    from .truth import CENSORING

    with err.status(f"true estimands of {kind.name!r}"):
        tr = kind.truth()
    horizon = getattr(tr, "horizon", None)
    rows = []
    for outcome in kind.outcomes:
        for estimand in ESTIMANDS:
            for measure in MEASURES:
                h = horizon if measure in MEASURES_WITH_HORIZON else None
                if measure in MEASURES_WITH_HORIZON and h is None:
                    continue
                for cens in CENSORING:
                    try:
                        theta, mcse = tr.estimand(outcome, estimand, cens, measure, h)
                    except ValueError:  # one this truth does not hold
                        continue
                    rows.append(
                        {"outcome": outcome, "estimand": estimand, "measure": measure,
                         "horizon": h, "censoring": cens, "theta": theta, "mcse": mcse}
                    )  # fmt: skip
    return rows


def _show_kind(kind, as_json: bool) -> None:
    """``show`` of a scenario kind (switching, a plasmode file): its description, columns,
    defaults and truths."""
    rows = _kind_truths(kind)
    if as_json:
        doc = {
            "scenario": kind.name,
            "description": kind.description,
            "outcomes": {k: list(v) for k, v in kind.outcomes.items()},
            "treatment": kind.treatment,
            "columns": list(kind.columns),
            "covariates": list(kind.covariates),
            "estimators": list(kind.estimators),
            "truth": rows,
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    out.print(f"[bold]{escape(kind.name)}[/bold]: {escape(kind.description)}")
    out.print(f"treatment column: {kind.treatment}; outcomes: {dict(kind.outcomes)}")
    out.print(f"default covariates: {', '.join(kind.covariates)}")
    out.print(f"default estimators: {', '.join(kind.estimators)}")
    table = Table("outcome", "estimand", "measure", "horizon", "censoring", "truth", "MCSE")
    for r in rows:
        h = "" if r["horizon"] is None else f"{r['horizon']:g}"
        table.add_row(r["outcome"], r["estimand"], r["measure"], h, r["censoring"],
                      f"{r['theta']:.4f}", f"{r['mcse']:.2g}")  # fmt: skip
    out.print(table)


def _show_generic(kind: GenericKind, as_json: bool, toml: bool) -> None:
    """``show`` of a generic scenario: TOML, or its truths (per outcome by name)."""
    from ..generic import generic_to_toml

    if toml:
        sys.stdout.write(generic_to_toml(kind.scenario))
        return
    with err.status(f"true estimands of {kind.name!r} (computed once per process)"):
        tr = kind.truth()
    rows = [
        {
            "outcome": k[0],
            "estimand": k[1],
            "censoring": k[2],
            "measure": k[3],
            "horizon": k[4],
            "theta": v[0],
            "mcse": v[1],
        }
        for k, v in tr.values.items()
    ]
    rows[:0] = [
        {
            "outcome": o,
            "estimand": "conditional",
            "censoring": "any",
            "measure": "log_hr",
            "horizon": None,
            "theta": b,
            "mcse": 0.0,
        }
        for o, b in tr.log_hr.items()
    ]
    if as_json:
        doc = {
            "scenario": kind.name,
            "description": kind.description,
            "truth": rows,
            "truth_population": tr.n,
            "parameters": kind.to_dict(),
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    out.print(f"[bold]{kind.name}[/]: {kind.description}", highlight=False)
    t = Table(title=f"true estimands (potential-outcome population of {tr.n:,})", box=None)
    for col in ("outcome", "estimand", "censoring", "measure", "value", "HR", "MCSE"):
        t.add_column(col)
    for r in rows:
        m = r["measure"] + ("" if r["horizon"] is None else f" @ {r['horizon']:g}")
        hr = f"{math.exp(r['theta']):.4f}" if r["measure"] == "log_hr" else ""
        t.add_row(
            r["outcome"],
            r["estimand"],
            r["censoring"],
            m,
            f"{r['theta']:.4f}",
            hr,
            f"{r['mcse']:.5f}",
        )
    out.print(t)


def _calibrated(sc: Scenario, *, force: bool = False) -> calibration.Calibration:
    """The scenario's calibration, announced and with a status line when it is solved now."""
    if not force and calibration.is_calibrated(sc):
        return calibration.calibrate(sc)
    what = f"calibrating {sc.name!r} by exact integration"
    err.print(f"{what} (once; cached)", highlight=False)
    with err.status(what):
        return calibration.calibrate(sc, use_cache=not force)


def _print_show(sc: Scenario, cal: calibration.Calibration, tr) -> None:
    out.print(f"[bold]{sc.name}[/]: {sc.description}", highlight=False)
    o, a = sc.outcomes, cal.achieved
    t = Table(title="calibration (targets vs calibration population)", box=None)
    for col in ("target", "asked", "achieved"):
        t.add_column(col)
    for outcome in ("pfs", "os"):
        t.add_row(
            f"{outcome} median control",
            _fmt(getattr(o, f"{outcome}_median_control")),
            _fmt(a.get(f"{outcome}_median_control")),
        )
        hr_key = f"{outcome}_hr_{o.hr_estimand.lower()}"
        t.add_row(
            f"{outcome} marginal HR ({o.hr_estimand})",
            _fmt(getattr(o, f"{outcome}_hr")),
            _fmt(a.get(hr_key)),
        )
        t.add_row(
            f"{outcome} median treated",
            _fmt(getattr(o, f"{outcome}_median_treated")),
            _fmt(a.get(f"{outcome}_median_treated")),
        )
    t.add_row("treated fraction", _fmt(sc.treatment.fraction), _fmt(a.get("treated_fraction")))
    if sc.response is not None:
        for arm in ("control", "treated"):
            t.add_row(
                f"response probability {arm}",
                _fmt(getattr(sc.response, f"probability_{arm}")),
                _fmt(a.get(f"response_probability_{arm}")),
            )
    out.print(t)
    what = "error bound" if tr.method == "exact" else "Monte Carlo SE"
    tt = Table(title=f"true estimands ({tr.method}, {tr.population:,} points; ± {what})", box=None)
    tt.add_column("estimand")
    tt.add_column("rwPFS")
    tt.add_column("OS")
    for key in tr.pfs.values:
        tt.add_row(
            key, *(f"{tr[x].values[key]:.4f} ± {tr[x].bound(key):.2g}" for x in ("pfs", "os"))
        )
    out.print(tt)
    if tr.response is not None:
        tr_ = Table(title="objective response: true estimands (± error bound)", box=None)
        tr_.add_column("estimand")
        tr_.add_column("response")
        for key, v in tr.response.values.items():
            tr_.add_row(key, f"{v:.4f} ± {tr.response.bound(key):.2g}")
        out.print(tr_)


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4g}"


@app.command()
@user_errors
def simulate(
    scenario: ScenarioArg,
    n: Annotated[int, typer.Option("-n", "--n", help="Number of patients.")] = 1430,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (>= 0).")] = 1,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Output file: .parquet (default) or .csv.")
    ] = Path("cohort.parquet"),
    potential_outcomes: Annotated[
        bool, typer.Option("--potential-outcomes", help="Add both uncensored potential outcomes.")
    ] = False,
    latent: Annotated[
        bool, typer.Option("--latent", help="Add the unmeasured frailty and the true ECOG.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Simulate a cohort and write it to Parquet (or CSV)."""
    kind = get_kind(scenario)
    if kind is not None:  # a scenario kind (generic, switching, plasmode): its own columns
        if potential_outcomes or latent:
            raise UserError(
                f"--potential-outcomes / --latent are not allowed for the scenario kind "
                f"{kind.name!r}; its frame has its own columns ({', '.join(kind.columns)})"
            )
        check_size(n)
        as_seed_sequence(seed)
        _check_output_file(output, force)
        df = kind.simulate(n, as_seed_sequence(seed))
        _write_frame(df, output)
        arm = df[kind.treatment]
        treated = f" ({int(arm.sum()):,} treated)" if arm.isin([0, 1]).all() else ""
        err.print(f"wrote {n:,} patients{treated} of {kind.name!r} to {output}")
        return
    sc = resolve_scenario(scenario)
    check_size(n, potential_outcomes=potential_outcomes, latent=latent, scenario=sc)
    as_seed_sequence(seed)
    _check_output_file(output, force)
    _calibrated(sc)
    df = simulate_cohort(sc, n, seed, potential_outcomes=potential_outcomes, latent=latent)
    _write_frame(df, output)
    treated = int(df["treated"].sum())
    err.print(f"wrote {len(df):,} patients ({treated:,} treated) of {sc.name!r} to {output}")


def _write_frame(df, output: Path) -> None:
    """Write ``df`` to ``output`` (.csv or .parquet) atomically (no half-written file)."""
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        if output.suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


def _check_output_file(output: Path, force: bool) -> None:
    """A clear error, before any work, for an output file that cannot be written."""
    if output.suffix not in (".parquet", ".csv"):
        raise UserError(f"--output={output} is not allowed; use a .parquet or .csv file name")
    if output.is_dir():
        raise UserError(f"--output={output} is a directory; give a file name in it")
    if output.exists() and not force:
        raise UserError(f"--output={output} exists; pass --force to overwrite it")
    parent = output.parent
    if parent.exists() and not parent.is_dir():
        raise UserError(f"--output={output}: {parent} is a file, not a directory")
    if not parent.is_dir():
        raise UserError(f"--output={output}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (
        output.exists() and not os.access(output, os.W_OK)
    ):
        raise UserError(f"--output={output} is not writable (permission denied)")


@app.command(name="calibrate")
@user_errors
def calibrate_cmd(
    scenario: ScenarioArg,
    force: Annotated[bool, typer.Option("--force", help="Recompute, ignoring caches.")] = False,
) -> None:
    """Solve a scenario's targets (cached) and print the solved parameters as JSON."""
    kind = get_kind(scenario)
    if kind is not None:
        raise UserError(
            f"calibrate is for the MBC scenarios; {kind.name!r} is a scenario kind, whose "
            f"targets (if any) are solved when it is loaded: `rwesim show {scenario}` prints "
            "its truths"
        )
    sc = resolve_scenario(scenario)
    cal = _calibrated(sc, force=force)
    sys.stdout.write(json.dumps(cal.to_json(), indent=2) + "\n")


# ---- simulation studies -----------------------------------------------------------------
def _study_from_args(
    target: str,
    reps,
    n,
    seed,
    estimators,
    outcomes,
    truth_censoring=None,
    measures=None,
    horizons=None,
) -> Study:
    """A study from a study TOML file, or a one-scenario study from a scenario name/file.

    ``measures`` / ``horizons`` (``--measure`` / ``--horizon``, months) replace the study's.
    """
    effects = {
        **({"measures": tuple(measures)} if measures else {}),
        **({"horizons": tuple(horizons)} if horizons else {}),
    }
    if target.endswith(".toml") and Path(target).is_file() and _is_study_file(Path(target)):
        study = load_study(target)
        changes = {
            k: v
            for k, v in (("reps", reps), ("seed", seed), ("truth_censoring", truth_censoring))
            if v is not None
        }
        if n:
            changes["sample_sizes"] = tuple(n)
        if estimators:
            changes["estimators"] = tuple(estimators)
        if outcomes:
            changes["outcomes"] = tuple(outcomes)
        changes |= effects
        return study_from_dict({**study.to_dict(), **changes}) if changes else study
    kind = get_kind(target)
    if kind is not None:  # a scenario kind: its own estimators, outcomes and covariates
        chosen = tuple(estimators) if estimators else kind.estimators
        # a kind may say under which censoring its marginal truths are to be scored
        tc = truth_censoring or getattr(kind, "truth_censoring", None)
        return study_from_dict(
            {
                "name": target,
                "scenarios": (target,),
                "sample_sizes": tuple(n) if n else (1500,),
                "reps": 1000 if reps is None else reps,
                "seed": 20_240_601 if seed is None else seed,
                "estimators": chosen,
                "outcomes": tuple(outcomes) if outcomes else tuple(kind.outcomes),
                "covariates": kind.covariates,
                **({"truth_censoring": tc} if tc else {}),
                **effects,
            }
        )
    resolve_scenario(target)  # a clear error for an unknown name or a bad file
    return study_from_dict(
        {
            "name": Path(target).stem if target.endswith(".toml") else target,
            "scenarios": (target,),
            "sample_sizes": tuple(n) if n else (1430,),
            "reps": 1000 if reps is None else reps,
            "seed": 20_240_601 if seed is None else seed,
            **({"estimators": tuple(estimators)} if estimators else {}),
            **({"outcomes": tuple(outcomes)} if outcomes else {}),
            **({"truth_censoring": truth_censoring} if truth_censoring else {}),
            **effects,
        }
    )


def _is_study_file(path: Path) -> bool:
    try:
        return "study" in tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text (UTF-8) TOML file") from None


@app.command()
@user_errors(interrupted="finished results are kept; use --resume")
def run(
    target: Annotated[str, typer.Argument(help="A scenario (name or TOML) or a study TOML file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Results directory.")],
    reps: Annotated[int | None, typer.Option("--reps", help="Replicates per condition.")] = None,
    n: Annotated[
        list[int] | None, typer.Option("-n", "--n", help="Patients per replicate (repeatable).")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Study seed (>= 0).")] = None,
    estimators: Annotated[
        list[str] | None,
        typer.Option(
            "--estimator",
            "-e",
            help="Estimator: a registered name, a study variant or an import path "
            "package.module:function (repeatable; replaces the study's list).",
        ),
    ] = None,
    outcomes: Annotated[
        list[str] | None, typer.Option("--outcome", help="pfs and/or os (repeatable).")
    ] = None,
    measures: Annotated[
        list[str] | None,
        typer.Option(
            "--measure",
            help="Effect measure: log_hr, rmst_diff, surv_diff (repeatable; replaces the "
            "study's measures; each estimator runs for those it reports).",
        ),
    ] = None,
    horizons: Annotated[
        list[float] | None,
        typer.Option(
            "--horizon",
            help="Horizon in months for rmst_diff / surv_diff (repeatable; replaces the "
            "study's horizons).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-w", help="Local worker processes (default: all cores)."),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786."),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option("--shard", help="Run only slice i of N (i/N), e.g. for SLURM arrays."),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an unfinished run.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Discard a previous run in the directory.")
    ] = False,
    truth_censoring: Annotated[
        TruthCensoring | None,
        typer.Option(
            "--truth-censoring",
            help="Marginal truths under 'admin' censoring (default) or all 'study' censoring.",
        ),
    ] = None,
) -> None:
    """Run a simulation study: replicates x estimators x outcomes, streamed to Parquet."""
    censoring = None if truth_censoring is None else truth_censoring.value
    study = _study_from_args(
        target, reps, n, seed, estimators, outcomes, censoring, measures, horizons
    )
    for size in study.sample_sizes:  # a replicate's cohort must fit in memory
        check_size(size)
    report = run_study(
        study,
        output,
        workers=workers,
        scheduler=scheduler,
        shard=parse_shard(shard) if shard else None,
        resume=resume,
        overwrite=overwrite,
    )
    rate = report.replicates_per_second
    err.print(
        f"{report.replicates_run} replicates in {report.seconds:.1f} s ({rate:.0f}/s); "
        f"{'complete' if report.complete else 'partial (resume or run the other shards)'}"
    )
    if report.complete:
        _print_summary(Store(Path(output)), None, None)


@app.command()
@user_errors
def summarize(
    directory: Annotated[Path, typer.Argument(help="A results directory written by `rwesim run`.")],
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the table as CSV.")] = None,
    markdown: Annotated[
        Path | None, typer.Option("--markdown", help="Also write the table as Markdown.")
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            help="An estimator of the run (e.g. siptw): adds each estimator's median time "
            "per fit relative to it ('time vs baseline').",
        ),
    ] = None,
) -> None:
    """Performance measures (bias, coverage, ... with Monte Carlo SEs) of a finished run,
    with the median milliseconds per fit ('ms/fit')."""
    _print_summary(_open_results(directory), csv, markdown, baseline)


def _open_results(directory: Path) -> Store:
    if not (directory / "run.json").is_file():
        raise UserError(f"{directory} is not an rwesim results directory (no run.json)")
    store = Store(directory)
    store.check_foreign()
    return store


def _print_summary(
    store: Store, csv: Path | None, markdown: Path | None, baseline: str | None = None
) -> None:
    table = summary_table(store, baseline=baseline)
    if table.empty:
        raise UserError(f"{store.root} holds no finished replicates yet")
    meta = store.read_meta()
    if meta.get("status") != "complete":
        err.print("[yellow]warning:[/] the run is not complete; the table covers finished chunks")
    if csv:
        table.to_csv(csv, index=False)
    if markdown:
        markdown.write_text(summary_markdown(table))
    out.print(summary_rich(table, meta))


@app.command()
@user_errors
def plot(
    directory: Annotated[Path, typer.Argument(help="A results directory written by `rwesim run`.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Folder for the PNGs (default DIR/plots).")
    ] = None,
) -> None:
    """Plots of a run: estimate distributions with the truths, zip plots, nested-loop plots."""
    store = _open_results(directory)
    if not store.done():
        raise UserError(f"{store.root} holds no finished replicates yet; nothing to plot")
    from .plots import plot_study

    paths = plot_study(store.root, output or store.root / "plots")
    for p in paths:
        out.print(str(p))


@app.command()
@user_errors
def validate(
    output: Annotated[Path, typer.Option("-o", "--output", help="Markdown report.")] = Path(
        "docs/validation.md"
    ),
    reps: Annotated[int, typer.Option("--reps", help="Replicates per scenario.")] = 1000,
    results: Annotated[
        Path, typer.Option("--results", help="Where the studies' results go (resumable).")
    ] = Path("results/validation"),
    benchmarks: Annotated[
        Path, typer.Option("--benchmarks", help="pytest-benchmark JSON for the speed section.")
    ] = Path("benchmarks/results/latest.json"),
    workers: Annotated[int | None, typer.Option("--workers", "-w")] = None,
) -> None:
    """Regenerate the validation report: calibration, bias/coverage, speed."""
    from .validation import write_report

    if reps < 1:
        raise UserError(f"--reps={reps} is not allowed; it must be a positive integer")
    path = write_report(output, reps, results, benchmarks, workers)
    err.print(f"wrote {path}")


# ---- real data ----------------------------------------------------------------------------
def _read_cohort(path: Path):
    import pandas as pd

    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    raise UserError(f"{path}: not allowed; give a .csv or .parquet file")


def _names(text: str, option: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise UserError(f"{option}={text!r} names no column; give comma-separated names")
    return names


def _horizons(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(h) for h in _names(text, "--horizons")]
    except ValueError:
        raise UserError(
            f"--horizons={text!r} is not allowed; give comma-separated times > 0, e.g. 24,36"
        ) from None


@app.command()
@user_errors
def analyze(
    cohort: Annotated[Path, typer.Argument(help="The cohort: a .csv or .parquet file.")],
    time: Annotated[str, typer.Option("--time", help="Follow-up column (> 0).")],
    event: Annotated[str, typer.Option("--event", help="Event column (1 = event, 0 = censored).")],
    treatment: Annotated[str, typer.Option("--treatment", help="Treatment column (two values).")],
    covariates: Annotated[
        str, typer.Option("--covariates", help="Comma-separated confounder columns.")
    ],
    treated: Annotated[
        str | None,
        typer.Option("--treated", help="The treated value, when the treatment is not 0/1."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Output folder (default: COHORT-analysis)."),
    ] = None,
    horizons: Annotated[
        str | None,
        typer.Option("--horizons", help="RMST / survival horizons, e.g. 24,36 (time units)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Matching and bootstrap seed (>= 0).")] = 0,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples.")] = 200,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an analysis in a non-empty folder.")
    ] = False,
) -> None:
    """Every estimator and variance option on a real cohort: tables (CSV) and figures (PNG)."""
    from estimators.analysis import analyze as run_analysis

    from .analysis_plots import check_output_folder, write_analysis

    folder = output if output is not None else Path(f"{cohort.stem}-analysis")
    covs = _names(covariates, "--covariates")
    hs = _horizons(horizons)
    check_output_folder(folder, overwrite)
    if not cohort.is_file():
        raise UserError(f"{cohort}: no such file")
    df = _read_cohort(cohort)
    result = run_analysis(
        df, time, event, treatment, covs, horizons=hs, treated=treated, n_boot=n_boot, seed=seed
    )
    write_analysis(result, folder, overwrite=overwrite)
    out.print(_estimates_rich(result.estimates))
    info = result.info
    err.print(
        f"{info['n']:,} patients ({info['treated_n']:,} treated, {info['events']:,} events); "
        f"wrote {folder}/ (estimates.csv, balance.csv, patients.csv, km.csv, figures)"
    )


@app.command(name="plasmode")
@user_errors
def plasmode_cmd(
    cohort: Annotated[Path, typer.Argument(help="The base cohort: a .csv or .parquet file.")],
    covariates: Annotated[
        str, typer.Option("--covariates", help="Comma-separated columns to resample.")
    ],
    treatment: Annotated[str, typer.Option("--treatment", help="Exposure column (two values).")],
    time: Annotated[str, typer.Option("--time", help="Follow-up column (> 0).")],
    event: Annotated[str, typer.Option("--event", help="Event column (1 = event, 0 = censored).")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Scenario file (.toml; the rows go next to it).")
    ] = Path("plasmode.toml"),
    treated: Annotated[
        str | None,
        typer.Option("--treated", help="The treated value, when the exposure is not 0/1."),
    ] = None,
    exposure: Annotated[
        str, typer.Option("--exposure", help="simulate (default, sound) or observed.")
    ] = "simulate",
    log_hr: Annotated[
        float | None, typer.Option("--log-hr", help="Conditional log-HR (default: fitted).")
    ] = None,
    marginal: Annotated[
        float | None,
        typer.Option("--marginal-log-hr", help="Calibrate to this marginal ATE log-HR instead."),
    ] = None,
    censoring: Annotated[
        str, typer.Option("--censoring", help="fitted (default) or administrative.")
    ] = "fitted",
    horizon: Annotated[
        float | None, typer.Option("--horizon", help="RMST / survival horizon (time units).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Fit a plasmode scenario to a cohort; `rwesim run` runs the file it writes."""
    from ..plasmode import plasmode, save_plasmode

    if output.suffix != ".toml":
        raise UserError(f"--output={output} is not allowed; give a .toml file name")
    for f in (output, output.with_suffix(".parquet")):
        if f.exists() and not force:
            raise UserError(f"--output: {f} exists; pass --force to overwrite it")
    if not output.parent.is_dir():
        raise UserError(f"--output={output}: directory {output.parent} does not exist")
    if not cohort.is_file():
        raise UserError(f"{cohort}: no such file")
    df = _read_cohort(cohort)
    sc = plasmode(
        df, _names(covariates, "--covariates"), treatment, time, event, exposure=exposure,
        log_hr=log_hr, marginal_target=marginal, censoring=censoring, horizon=horizon,
        treated_value=treated, name=output.stem,
    )  # fmt: skip
    save_plasmode(sc, output)
    err.print(
        f"wrote {output} ({len(sc.base):,} base rows in {output.with_suffix('.parquet').name}; "
        f"exposure {sc.exposure}, conditional log-HR {sc.log_hr:+.4f}, fitted "
        f"{sc.fitted_log_hr:+.4f}); run it with `rwesim run {output}`"
    )


def _estimates_rich(table) -> Table:
    import math

    tt = Table(title="Treatment-effect estimates", show_lines=False)
    for col in ("estimator", "options", "estimand", "measure", "estimate (95% CI)", "HR (95% CI)"):
        tt.add_column(col)
    for col in ("p", "n", "events", "ESS", "flags"):
        tt.add_column(col, justify="right" if col != "flags" else "left")
    for r in table.itertuples(index=False):
        measure = r.measure if math.isnan(r.horizon) else f"{r.measure} @ {r.horizon:g}"
        if r.error:
            est = hr = "-"
            flags = f"FAILED: {r.error}"
        else:
            est = f"{r.estimate:.4f} ({r.ci_low:.4f}, {r.ci_high:.4f})"
            hr = "-" if math.isnan(r.hr) else f"{r.hr:.3f} ({r.hr_ci_low:.3f}, {r.hr_ci_high:.3f})"
            flags = ("" if r.converged else "not converged ") + ("warnings" if r.warnings else "")
        p = "-" if math.isnan(r.p_value) else f"{r.p_value:.4f}"
        ess = "-" if math.isnan(r.ess) else f"{r.ess:.0f}"
        tt.add_row(
            r.estimator,
            escape(r.options),
            r.estimand,
            measure,
            est,
            hr,
            p,
            str(r.n),
            str(r.events),
            ess,
            escape(flags.strip()),
        )
    return tt
