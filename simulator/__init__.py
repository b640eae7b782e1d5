"""Synthetic HR+/HER2- MBC cohorts with known treatment effects (the cohort core)."""
