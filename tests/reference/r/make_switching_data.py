"""Write tests/reference/data/switching_400.csv: a fixed switching cohort for the R oracle.

``simulate_switching(None, 400, 7)`` (the built-in scenario) at the commit that added it;
the CSV is the data of record (tests read it, they do not regenerate it).
Run from the repository root: ``PYTHONPATH=. python tests/reference/r/make_switching_data.py``.
"""

from simulator.switching import simulate_switching

COLUMNS = ["id", "switch_months", "os_months", "os_event", "age", "ecog", "visceral",
           "adverse_event"]  # fmt: skip

if __name__ == "__main__":
    df = simulate_switching(None, 400, 7)
    df[COLUMNS].to_csv("tests/reference/data/switching_400.csv", index=False, float_format="%.10g")
