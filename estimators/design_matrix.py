"""Covariate design matrices: numeric columns as-is, categoricals one-hot coded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ._column_kernels import _column_ranges
from .exceptions import EstimatorInputError
from .validation import Coded, Data, check_covariates, check_frame, is_categorical, n_rows
from .validation import raw_float_column as _raw_float


@dataclass(frozen=True)
class Design:
    """A numeric design matrix built from data columns.

    Attributes
    ----------
    X : ndarray, shape (n, p)
        float64 matrix, no intercept column.
    names : tuple of str
        Column names: numeric covariates keep their name; a categorical ``c`` with
        level ``l`` becomes ``"c[l]"`` (reference level dropped).
    sources : tuple of str
        The covariate each column comes from (``"c"`` for ``"c[l]"``); empty when
        unknown (a design built by hand).
    """

    X: np.ndarray
    names: tuple[str, ...]
    sources: tuple[str, ...] = ()

    @cached_property
    def ranges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per column: min (p,), max (p,) of the finite values and whether all are
        finite, computed once (the design checks and every fit's rescaling read them;
        :func:`design_matrix` and :meth:`select` fill them as they build)."""
        if self.X.shape[0] == 0:
            p = self.X.shape[1]
            return np.full(p, np.inf), np.full(p, -np.inf), np.ones(p, dtype=bool)
        return _column_ranges(np.asarray(self.X, dtype=np.float64))

    def ranges_with(self, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        """``(min, max)`` of the columns of ``[c | X]`` for a first column ``c`` with
        range ``[lo, hi]`` (an intercept, a 0/1 treatment)."""
        mn, mx, _ = self.ranges
        return np.concatenate(([lo], mn)), np.concatenate(([hi], mx))

    def select(self, covariates: Sequence[str]) -> Design:
        """The columns of ``covariates``, in their order: equal to the design built from
        them alone (reference levels do not depend on the other covariates)."""
        if tuple(covariates) == tuple(dict.fromkeys(self.sources)):
            return self
        missing = [c for c in covariates if c not in self.sources]
        if missing or not self.sources:
            raise EstimatorInputError(
                f"covariates {missing or list(covariates)} are not in this design "
                f"(built from {list(dict.fromkeys(self.sources))})"
            )
        idx = [j for c in covariates for j, s in enumerate(self.sources) if s == c]
        k = len(idx)
        take = slice(0, k) if idx == list(range(k)) else idx  # a leading block: no gather
        out = Design(
            np.ascontiguousarray(self.X[:, take]),
            tuple(self.names[j] for j in idx),
            tuple(self.sources[j] for j in idx),
        )
        known = self.__dict__.get("ranges")
        if known is not None:
            _set_ranges(out, tuple(r[take] for r in known))
        return out


def _set_ranges(design: Design, ranges: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Design:
    """Store the column ranges already known for ``design`` (see :attr:`Design.ranges`)."""
    design.__dict__["ranges"] = ranges  # the cached_property's slot (frozen dataclass)
    return design


def _codes(s: object, col: str) -> tuple[np.ndarray, Sequence[str]]:
    if isinstance(s, Coded):
        return np.asarray(s.codes), s.levels
    if isinstance(s, pd.Series) and isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy(), s.cat.categories
    return pd.factorize(s, sort=True)  # sorted levels, as astype("category") gives


def _levels_present(s: object, col: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Codes (n,), the codes of the non-reference levels present, and their column names
    (``col[level]``); the first level present is the reference."""
    codes, levels = _codes(s, col)
    if (codes < 0).any():
        raise EstimatorInputError(
            f"covariate {col!r} has missing values; code them as a level (e.g. 'unknown')"
        )
    present = np.flatnonzero(np.bincount(codes, minlength=len(levels)))[1:]
    return codes, present, [f"{col}[{levels[k]}]" for k in present]


def design_matrix(df: Data, covariates: Sequence[str]) -> Design:
    """Build the design matrix for ``covariates``.

    Numeric and boolean columns enter linearly; object, string, categorical and
    :class:`~estimators.validation.Coded` columns are one-hot coded against their
    first level present in the data (category order, else sorted), so an
    ``"unknown"`` level is its own indicator.  Levels absent from ``df`` are dropped.
    NaN or inf is an error.

    Parameters
    ----------
    df : DataFrame or mapping of column name to array
    covariates : sequence of str
        Column names, each once.

    Returns
    -------
    Design
    """
    covariates = check_covariates(covariates)
    check_frame(df, covariates=list(covariates))
    parts: list[tuple[np.ndarray, np.ndarray | None]] = []  # (values or codes, levels)
    names: list[str] = []
    sources: list[str] = []
    for c in covariates:
        s = df[c]
        if is_categorical(s):
            codes, present, c_names = _levels_present(s, c)
            parts.append((codes, present))
        else:
            x = _raw_numeric(df, c)
            if x.dtype.kind == "f" and not np.isfinite(x).all():
                raise EstimatorInputError(
                    f"covariate {c!r} contains NaN or inf; all covariate values must be finite"
                )
            parts.append((x, None))
            c_names = [c]
        names += c_names
        sources += [c] * len(c_names)
    p = len(names)
    Xt = np.empty((p, n_rows(df)))  # filled row by row (contiguous), transposed once
    lo, hi = np.zeros(p), np.ones(p)  # an indicator of a level present: 0 and 1 both occur
    j = 0
    for values, present in parts:
        if present is None:
            Xt[j] = values
            if values.size:
                lo[j], hi[j] = values.min(), values.max()
            j += 1
        else:
            for k in present:
                np.equal(values, k, out=Xt[j], casting="unsafe")
                j += 1
    design = Design(np.ascontiguousarray(Xt.T), tuple(names), tuple(sources))
    if Xt.shape[1] == 0:
        return design
    return _set_ranges(design, (lo, hi, np.ones(p, dtype=bool)))


def _raw_numeric(df: Data, col: str) -> np.ndarray:
    """A numeric covariate's values: integer and boolean columns as they are (no float
    copy, nothing to check for finiteness), others as float64."""
    s = df[col]
    if isinstance(s, np.ndarray) and s.ndim == 1 and s.dtype.kind in "biu":
        return s
    return _raw_float(df, col, "covariates")
