"""``python -m simulator.study`` is the ``rwesim`` command."""

from .cli import app

app(prog_name="rwesim")
