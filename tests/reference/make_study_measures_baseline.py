"""Write study_measures_baseline.json: the rows of a small study without ``measures``.

Run with the code *before* the study keys ``measures`` / ``horizons`` existed (main at
commit 0949dea), from the repository root::

    PYTHONPATH=. python tests/reference/make_study_measures_baseline.py 0949dea \
        tests/reference/study_measures_baseline.json

tests/test_study_measures.py runs the same study with the current code and requires the
same rows bit for bit (a study without the new keys is unchanged).
"""

import json
import math
import sys
import tempfile

from simulator.study import Study, run_study
from simulator.study.store import Store, study_identity

COLUMNS = [
    "condition", "rep", "outcome", "estimator", "measure", "horizon",
    "estimate", "se", "ci_low", "ci_high", "p_value", "converged", "error",
]  # fmt: skip


def _plain(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    return v.item() if hasattr(v, "item") else v


def main(commit: str, path: str) -> None:
    study = Study(
        name="baseline",
        scenarios=("flatiron",),
        sample_sizes=(300,),
        reps=3,
        chunk_reps=3,
        seed=11,
        estimators=("siptw", "psm", "naive_cox", "adjusted_cox", "iptw_km", "aiptw"),
    )
    out = tempfile.mkdtemp()
    run_study(study, out, workers=1, progress=False, log=lambda m: None)
    rows = Store(out).read_results()[COLUMNS]
    data = {
        "commit": commit,
        "study": study.to_dict(),
        "identity": study_identity(json.loads(json.dumps(study.to_dict()))),
        "columns": COLUMNS,
        "rows": [[_plain(v) for v in r] for r in rows.itertuples(index=False)],
    }
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
