"""cli owns the ``clearlane`` command: one typer application whose commands parse arguments, call
the node and print results (``main``), and the live demo's process wiring (``demo``)."""
