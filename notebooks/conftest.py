"""pytest + nbmake: execute the notebooks (``*.ipynb``) at a small replicate count.

Each notebook reads ``REPS`` from ``RWESIM_NOTEBOOK_REPS`` (full count by default, for a
reader running it); under pytest the count is small so that all notebooks run in CI in
a few minutes.  The jupytext ``.py`` pairs are sources, not test modules.
"""

import os

os.environ.setdefault("RWESIM_NOTEBOOK_REPS", "40")

collect_ignore_glob = ["*.py"]
