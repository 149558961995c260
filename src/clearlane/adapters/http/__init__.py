"""service owns ``clearlane serve``: the runtime that drives one :class:`~clearlane.node.runner.Runner`
from a clock and a submission queue, the in-memory read model rebuilt from the committed log,
the in-process event bus, webhooks, API keys and roles, HTTP caching, Prometheus metrics and the
FastAPI application that exposes them.

The engine stays pure: everything here sits at the edge. Inputs are validated with the same code
as files (:mod:`clearlane.node.intake`), logged and applied by the runner, and only what is committed
is read, published or delivered.
"""
