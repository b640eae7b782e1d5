"""Shared pytest configuration: hypothesis profile (no deadline: first calls JIT-compile),
and numpy's floating-point error state restored after every test."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "rwesim",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile("rwesim")


@pytest.fixture(autouse=True)
def _numpy_error_state():
    """lifelines' KaplanMeierFitter calls ``np.seterr(divide="ignore", invalid="ignore")``
    for the whole process; without this, a test after it could not see numpy's warnings."""
    state = np.geterr()
    yield
    np.seterr(**state)
