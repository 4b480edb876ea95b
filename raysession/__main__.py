"""``python -m raysession``: the ``raysession`` command (:mod:`raysession.cli`)."""

from raysession.cli import main

main(prog_name="raysession")
