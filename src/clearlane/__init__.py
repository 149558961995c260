"""clearlane: a Layer-2 clearing and settlement engine.

Three layers, dependencies pointing inward (import-linter holds them in CI):

* ``core`` — pure and deterministic: money, typed inputs and events, config, the clearing engine,
  the double-entry ledger, proofs. Time, ids and randomness are inputs.
* ``node`` — the application, the one door every driver goes through: intake, the log, apply,
  commit, the base-layer feed, recovery, signing, projections and the public event vocabulary.
* ``adapters`` — thin edges: SQL storage, the base layer, NATS, HTTP (API and dashboard), the CLI.

Beside them: ``evidence`` (what third parties read back), ``sim`` (generated days and market
feeds) and ``testing`` (dev servers and contract suites shipped for tests). See
docs/ARCHITECTURE.md for the path of a trade.
"""

__version__ = "0.1.0"
