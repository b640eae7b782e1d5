"""Public generator: ``simulate(scenario, n, seed)`` -> cohort DataFrame (or raw arrays)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pandas as pd

from . import _cohort_kernels as K
from .calibration import Calibration, calibrate, calibration_key
from .catalog import get_scenario
from .exceptions import ScenarioError
from .features import AGE_GROUPS, ECOG_LEVELS, OS_REASONS, PFS_REASONS, RACES
from .plan import Plan, build_plan
from .response import draw_response
from .scenario import Scenario
from .streams import SeedLike, as_seed_sequence, chunk_generator, chunk_streams, n_chunks

# Column name -> (row in the float or int8 output matrix, description).
FLOAT_COLUMNS = {
    "pfs_months": (K.F_PFS, "observed rwPFS time, months from index"),
    "os_months": (K.F_OS, "observed OS time, months from index"),
    "ps_true": (K.F_PS, "true propensity score P(treated | covariates, frailty)"),
    "age": (K.F_AGE, "age at index, years"),
    "dfi_years": (K.F_DFI, "disease-free interval, years (recurrent disease; NaN if de novo)"),
    "entry_month": (K.F_ENTRY, "index date, months after the start of accrual"),
}
INT_COLUMNS = {
    "treated": (K.I_TREATED, "1 = palbociclib + letrozole (treated), 0 = letrozole"),
    "pfs_event": (K.I_PFS_EVENT, "1 = progression or death observed"),
    "os_event": (K.I_OS_EVENT, "1 = death observed"),
    "visceral": (K.I_VISCERAL, "visceral (lung and/or liver) metastases"),
    "lung_mets": (K.I_LUNG, "lung metastases"),
    "liver_mets": (K.I_LIVER, "liver metastases"),
    "bone_only": (K.I_BONE, "bone-only disease"),
    "n_met_sites": (K.I_SITES, "number of metastatic sites, 1, 2 or 3 (= 3 or more)"),
    "de_novo": (K.I_DENOVO, "de novo metastatic (stage IV at diagnosis)"),
    "academic": (K.I_ACADEMIC, "academic practice (0 = community)"),
}
# name -> (int8 row, levels, code of the first level in the kernel, description)
CATEGORICAL_COLUMNS = {
    "ecog": (K.I_ECOG_OBS, ECOG_LEVELS, 0, "recorded ECOG: 0, 1, 2+ or unknown"),
    "race": (K.I_RACE, RACES, 0, "race / ethnicity as recorded"),
    "age_group": (K.I_AGE_GROUP, AGE_GROUPS, 0, "age band at index"),
    "pfs_reason": (K.I_PFS_REASON, PFS_REASONS, K.R_PROGRESSION, "what ended rwPFS follow-up"),
    "os_reason": (K.I_OS_REASON, OS_REASONS, K.R_DEATH, "what ended OS follow-up"),
}
POTENTIAL_COLUMNS = {
    "pfs_months_0": (K.F_PFS0, "uncensored potential rwPFS under letrozole, months"),
    "pfs_months_1": (K.F_PFS1, "uncensored potential rwPFS under P+L, months"),
    "os_months_0": (K.F_OS0, "uncensored potential OS under letrozole, months"),
    "os_months_1": (K.F_OS1, "uncensored potential OS under P+L, months"),
}
CROSSOVER_FLOAT_COLUMNS = {
    "progression_months": (
        K.F_PROG,
        "true progression time, months from index, when observed before the end of OS "
        "follow-up (NaN otherwise); crossover scenarios only",
    ),
    "crossover_months": (
        K.F_XOVER,
        "time of the switch to the other arm's treatment (= progression_months), months; "
        "NaN without a switch; crossover scenarios only",
    ),
}
CROSSOVER_INT_COLUMNS = {
    "crossover": (
        K.I_XOVER,
        "1 = switched to the other arm's treatment at progression (observed before the "
        "end of OS follow-up); crossover scenarios only",
    ),
}
RESPONSE_COLUMNS = {
    "response": "1 = objective (best) response; only in scenarios with a response block",
}
POTENTIAL_RESPONSE_COLUMNS = {
    "response_0": "potential response under letrozole (0/1; with potential outcomes)",
    "response_1": "potential response under P+L (0/1; with potential outcomes)",
}
LATENT_COLUMNS = {
    "frailty": "unmeasured confounder (standard normal); never seen by estimators",
    "ecog_true": "true ECOG category 0, 1, 2 (2 = 2+) behind the recorded one",
}
COLUMN_ORDER = (
    "treated",
    "pfs_months",
    "pfs_event",
    "os_months",
    "os_event",
    "ps_true",
    "age",
    "ecog",
    "visceral",
    "lung_mets",
    "liver_mets",
    "bone_only",
    "n_met_sites",
    "de_novo",
    "dfi_years",
    "academic",
    "race",
    "entry_month",
    "age_group",
    "pfs_reason",
    "os_reason",
)


def describe_columns() -> dict[str, str]:
    """Column name -> description (units in months / years) of a simulated cohort."""
    out = {k: v[-1] for k, v in {**FLOAT_COLUMNS, **INT_COLUMNS, **CATEGORICAL_COLUMNS}.items()}
    out = {k: out[k] for k in COLUMN_ORDER}
    out.update(RESPONSE_COLUMNS)
    out.update({k: v[-1] for k, v in {**CROSSOVER_INT_COLUMNS, **CROSSOVER_FLOAT_COLUMNS}.items()})
    out.update({k: v[1] for k, v in POTENTIAL_COLUMNS.items()})
    out.update(POTENTIAL_RESPONSE_COLUMNS)
    out.update(LATENT_COLUMNS)
    return out


@dataclass(frozen=True)
class CohortArrays:
    """Raw columnar output of the kernel (the fast path).

    floats : ndarray (N_FLOAT_OUT, n) float64 — rows indexed by ``_cohort_kernels.F_*``.
    ints : ndarray (N_INT_OUT, n) int8 — rows indexed by ``_cohort_kernels.I_*``.
    response : ndarray (n,) int8 or None — objective response (scenarios with a ``response``).
    potential_response : ndarray (2, n) int8 or None — responses under control, treatment.
    """

    floats: np.ndarray
    ints: np.ndarray
    response: np.ndarray | None = None
    potential_response: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.floats.shape[1]


def _resolve(scenario: Scenario | str) -> Scenario:
    if isinstance(scenario, str):
        return get_scenario(scenario)
    if not isinstance(scenario, Scenario):
        raise ScenarioError(
            f"scenario={scenario!r} is not allowed; give a Scenario or a built-in scenario name"
        )
    return scenario


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n <= 0:
        raise ScenarioError(f"n={n!r} is not allowed; it must be a positive integer (patients)")
    return int(n)


def _check_flag(x: object, param: str) -> None:
    if not isinstance(x, bool | np.bool_):
        raise ScenarioError(f"{param}={x!r} is not allowed; it must be True or False")


def bytes_per_patient(
    *,
    potential_outcomes: bool = False,
    latent: bool = False,
    frame: bool = True,
    response: bool = False,
    crossover: bool = False,
) -> int:
    """Estimated peak memory of :func:`simulate` per patient, bytes.

    The kernel's output arrays (float64 and int8 rows); a scenario with a response adds
    its draw's temporaries (uniforms, linear predictor, features, the two probabilities:
    about eight float64 values) and its three int8 columns; for a DataFrame, one copy of
    its columns (pandas may copy them when it builds the frame), crossover's three
    included.  Peaks traced at n = 400,000 (numpy allocations, which vary from run to
    run): 136-162 bytes per patient (flatiron, po25-rct), 164 with every extra column,
    179 with a response, 140-181 with crossover; this bound is 1.14-1.65 times those.
    """
    arrays = K.N_FLOAT_OUT * 8 + K.N_INT_OUT + (8 * 8 + 3 if response else 0)
    if not frame:
        return arrays
    floats = len(FLOAT_COLUMNS) + (len(POTENTIAL_COLUMNS) if potential_outcomes else 0)
    small = len(INT_COLUMNS) + len(CATEGORICAL_COLUMNS)  # int8 columns and category codes
    if latent:
        floats, small = floats + 1, small + 1
    if crossover:
        floats, small = floats + len(CROSSOVER_FLOAT_COLUMNS), small + len(CROSSOVER_INT_COLUMNS)
    if response:
        small += 3 if potential_outcomes else 1
    return arrays + 8 * floats + small


def available_memory() -> int | None:
    """Bytes of memory this process can still use (None where it cannot be told).

    Linux: ``MemAvailable`` of /proc/meminfo, capped by a cgroup v2 ``memory.max`` limit;
    elsewhere the free (else total) physical memory.
    """
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            room = max(int(limit) - used, 0)
            avail = room if avail is None else min(avail, room)
    except (OSError, ValueError):
        pass
    if avail is None:
        for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
            try:
                avail = os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
                break
            except (ValueError, OSError, AttributeError):
                continue
    return avail


SMALL_COHORT_BYTES = 2**26
"""Cohorts needing at most this many bytes (64 MiB) skip the memory query of
:func:`check_size`: reading /proc per replicate cost ~50 us, and so small an
allocation is not what exhausts a machine."""


def check_size(
    n: object,
    *,
    potential_outcomes: bool = False,
    latent: bool = False,
    frame: bool = True,
    scenario: Scenario | None = None,
) -> int:
    """Validate ``n`` (patients) and check the cohort fits in the memory left, before work.

    The memory is asked for only above :data:`SMALL_COHORT_BYTES`; ``scenario`` adds its
    response and crossover columns to the estimate.

    Raises
    ------
    ScenarioError
        ``n`` is not a positive integer, or the estimated memory
        (``n`` x :func:`bytes_per_patient`) exceeds :func:`available_memory`.
    """
    n = _check_n(n)
    per = bytes_per_patient(
        potential_outcomes=potential_outcomes,
        latent=latent,
        frame=frame,
        response=scenario is not None and scenario.response is not None,
        crossover=scenario is not None and scenario.crossover is not None,
    )
    if n * per <= SMALL_COHORT_BYTES:  # no need to ask the system (a study's replicates)
        return n
    avail = available_memory()
    if avail is not None and n * per > avail:
        raise ScenarioError(
            f"n={n!r} is not allowed here: {n:,} patients need about {_gib(n * per)} of memory "
            f"({per} bytes per patient) and {_gib(avail)} is available; simulate fewer "
            "patients, or several cohorts seeded by numpy.random.SeedSequence(seed).spawn(k)"
        )
    return n


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:,.1f} GiB"


_PLANS: dict[str, Plan] = {}


def plan_for(scenario: Scenario | str, calibration: Calibration | None = None) -> Plan:
    """Kernel plan of a scenario (calibrating it first if needed; cached per scenario).

    ``calibration``: the scenario's calibration computed elsewhere (a study's parent
    process); it must be this scenario's (same calibration key).
    """
    sc = _resolve(scenario)
    key = sc.fingerprint()
    if calibration is not None and (
        not isinstance(calibration, Calibration) or calibration.key != calibration_key(sc)
    ):
        raise ScenarioError(
            f"calibration (key {getattr(calibration, 'key', calibration)!r}) is not allowed: "
            f"it is not the calibration of scenario {sc.name!r}; pass calibrate(scenario) "
            "or None"
        )
    if key not in _PLANS:
        solved = (calibration or calibrate(sc)).solved
        plan = build_plan(sc, solved)
        if sc.crossover is not None:
            from .crossover import with_crossover

            plan = with_crossover(plan, sc, solved)
        _PLANS[key] = plan
    return _PLANS[key]


def _check_threads(threads: object) -> int | None:
    top = numba.config.NUMBA_NUM_THREADS
    if threads is None:
        return None
    if (
        isinstance(threads, bool)
        or not isinstance(threads, int | np.integer)
        or not 1 <= threads <= top
    ):
        raise ScenarioError(f"threads={threads!r} is not allowed; use 1..{top} or None")
    return int(threads)


@contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def simulate_arrays(
    scenario: Scenario | str,
    n: int,
    seed: SeedLike,
    *,
    potential_outcomes: bool = False,
    threads: int | None = None,
    calibration: Calibration | None = None,
) -> CohortArrays:
    """Simulate ``n`` patients into raw arrays (see :class:`CohortArrays`).

    The result depends only on (scenario, n, seed): not on ``threads``.
    """
    sc = _resolve(scenario)
    _check_flag(potential_outcomes, "potential_outcomes")
    n = check_size(n, potential_outcomes=potential_outcomes, frame=False, scenario=sc)
    root = as_seed_sequence(seed)
    threads = _check_threads(threads)
    plan = plan_for(sc, calibration)
    floats = np.full((K.N_FLOAT_OUT, n), np.nan)
    ints = np.zeros((K.N_INT_OUT, n), dtype=np.int8)
    head = (*plan.patient_args, plan.lost_b, plan.nz_lost, plan.next_b, plan.nz_next)
    tail = (plan.X, plan.x_b, plan.nz_x, bool(potential_outcomes), floats, ints)
    # without crossover the kernel never draws from its switching stream: it gets the
    # uniform stream's generator as a placeholder, and no fourth stream is seeded
    x_stream = 3 if plan.crossover else 1
    with _threads(threads):
        if n_chunks(n) == 1:  # one chunk: numpy draws it, the serial kernel runs it
            K._cohort_chunk(*_chunk_draws(root, n, plan.crossover), 0, n, *head, *tail)
        else:
            lists = chunk_streams(root, n, (0, 1, 2, x_stream))
            K._cohort(*lists[:3], n, *head, lists[3], *tail)
    if sc.response is None:
        return CohortArrays(floats=floats, ints=ints)
    intercepts = (calibration or calibrate(sc)).solved.response_intercepts
    response, potential = draw_response(sc.response, intercepts, floats, ints, root)
    return CohortArrays(floats, ints, response, potential if potential_outcomes else None)


def _chunk_draws(
    root: np.random.SeedSequence, m: int, crossover: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Chunk 0's random numbers for ``m`` patients, drawn by numpy: the same numbers, bit
    for bit, as the kernels' :func:`~simulator._cohort_kernels._draw_block` takes from the
    same streams (numpy fills arrays in the order numba draws them one by one)."""
    gn, gu, ge = (chunk_generator(root, 0, s) for s in range(3))
    zn = gn.standard_normal((m, K.N_NORMAL))
    uu = gu.random((m, K.N_UNIFORM))
    ee = ge.standard_exponential((m, K.N_EXPON))
    ux = chunk_generator(root, 0, 3).random(m) if crossover else np.empty(0)
    return zn, uu, ee, ux


def to_frame(
    arr: CohortArrays,
    *,
    potential_outcomes: bool = False,
    latent: bool = False,
    crossover: bool = False,
) -> pd.DataFrame:
    """Cohort DataFrame with the documented columns and dtypes (``crossover``: add the
    crossover columns, after the standard ones)."""
    cols: dict[str, object] = {}
    for name, (row, _) in FLOAT_COLUMNS.items():
        cols[name] = arr.floats[row]
    for name, (row, _) in INT_COLUMNS.items():
        cols[name] = arr.ints[row]
    for name, (row, levels, first, _) in CATEGORICAL_COLUMNS.items():
        codes = arr.ints[row] - np.int8(first) if first else arr.ints[row]
        cols[name] = pd.Categorical.from_codes(codes, categories=list(levels))
    df = pd.DataFrame({k: cols[k] for k in COLUMN_ORDER}, copy=False)
    if arr.response is not None:
        df.insert(COLUMN_ORDER.index("os_event") + 1, "response", arr.response)
    if crossover:
        for name, (row, _) in CROSSOVER_INT_COLUMNS.items():
            df[name] = arr.ints[row]
        for name, (row, _) in CROSSOVER_FLOAT_COLUMNS.items():
            df[name] = arr.floats[row]
    if potential_outcomes:
        for name, (row, _) in POTENTIAL_COLUMNS.items():
            df[name] = arr.floats[row]
        if arr.potential_response is not None:
            df["response_0"] = arr.potential_response[0]
            df["response_1"] = arr.potential_response[1]
    if latent:
        df["frailty"] = arr.floats[K.F_FRAILTY]
        df["ecog_true"] = arr.ints[K.I_ECOG_TRUE]
    return df


def simulate(
    scenario: Scenario | str,
    n: int,
    seed: SeedLike,
    *,
    potential_outcomes: bool = False,
    latent: bool = False,
    threads: int | None = None,
    calibration: Calibration | None = None,
) -> pd.DataFrame:
    """Simulate a cohort of ``n`` patients.

    Parameters
    ----------
    scenario : Scenario or str
        A scenario or the name of a built-in one (``"flatiron"``, ...).
    n : int
        Number of patients (rows).
    seed : int or numpy.random.SeedSequence
        Same (scenario, n, seed) gives a bit-identical cohort whatever the thread count.
    potential_outcomes : bool
        Add ``pfs_months_0/1`` and ``os_months_0/1``: both uncensored potential outcomes
        (without crossover: the treatments themselves, the hypothetical estimand's), and
        ``response_0/1`` in a scenario with a response.
    latent : bool
        Add ``frailty`` (the unmeasured confounder) and ``ecog_true``.
    threads : int, optional
        numba threads for this call (default: numba's current setting).
    calibration : Calibration, optional
        The scenario's calibration when it was computed elsewhere (a study passes the
        parent's to its workers); default: :func:`~simulator.calibration.calibrate`.

    Returns
    -------
    DataFrame, shape (n, 21 + extras)
        Columns documented by :func:`describe_columns`; times in months.  A scenario
        with crossover adds ``crossover``, ``progression_months`` and
        ``crossover_months``; a scenario

        with a ``response`` block adds ``response`` (0/1) after ``os_event``.

    Raises
    ------
    ScenarioError
        A bad argument, or a cohort too large for the memory left (see :func:`check_size`),
        before any work is done.
    """
    sc = _resolve(scenario)
    _check_flag(latent, "latent")
    check_size(n, potential_outcomes=potential_outcomes, latent=latent, scenario=sc)
    arr = simulate_arrays(
        sc, n, seed, potential_outcomes=potential_outcomes, threads=threads, calibration=calibration
    )
    crossover = sc.crossover is not None
    return to_frame(arr, potential_outcomes=potential_outcomes, latent=latent, crossover=crossover)
