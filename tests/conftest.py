"""Shared pytest configuration: hypothesis profile (no deadline: first calls JIT-compile)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "rwesim",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile("rwesim")
