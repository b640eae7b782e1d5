"""Covariate design matrices: numeric columns as-is, categoricals one-hot coded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

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
        return Design(
            np.ascontiguousarray(self.X[:, idx]),
            tuple(self.names[j] for j in idx),
            tuple(self.sources[j] for j in idx),
        )


def _codes(s: object, col: str) -> tuple[np.ndarray, Sequence[str]]:
    if isinstance(s, Coded):
        return np.asarray(s.codes), s.levels
    if isinstance(s, pd.Series) and isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy(), s.cat.categories
    return pd.factorize(s, sort=True)  # sorted levels, as astype("category") gives


def _one_hot(s: object, col: str) -> tuple[list[np.ndarray], list[str]]:
    codes, levels = _codes(s, col)
    if (codes < 0).any():
        raise EstimatorInputError(
            f"covariate {col!r} has missing values; code them as a level (e.g. 'unknown')"
        )
    counts = np.bincount(codes, minlength=len(levels))
    present = np.flatnonzero(counts)
    cols, names = [], []
    for k in present[1:]:  # first present level is the reference
        cols.append((codes == k).astype(np.float64))
        names.append(f"{col}[{levels[k]}]")
    return cols, names


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
    cols: list[np.ndarray] = []
    names: list[str] = []
    sources: list[str] = []
    for c in covariates:
        s = df[c]
        if is_categorical(s):
            c_cols, c_names = _one_hot(s, c)
        else:
            x = _raw_float(df, c, "covariates")
            if not np.isfinite(x).all():
                raise EstimatorInputError(
                    f"covariate {c!r} contains NaN or inf; all covariate values must be finite"
                )
            c_cols, c_names = [x], [c]
        cols += c_cols
        names += c_names
        sources += [c] * len(c_names)
    X = np.column_stack(cols) if cols else np.empty((n_rows(df), 0))
    return Design(np.ascontiguousarray(X, dtype=np.float64), tuple(names), tuple(sources))
