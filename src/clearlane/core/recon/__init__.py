"""Reconciliation's pure rules: what an external record is, how it is matched to internal ones,
which breaks exist, and the generic case workflow exceptions (and later alerts and disputes) run.

Owns: the statement and batch-report records (``records``), currency scales and strict amount
conversion (``amounts``), break and outcome codes (``codes``), the deterministic matcher
(``matching``, its columnar passes ``exact`` and fuzzy references ``fuzzy``), the base-layer
comparison of anchors and L1 settlements with the chain (``baselayer``) and the end-of-day
rules (``eod``). No I/O and no clock: parsers live in ``node/recon``, storage behind ``node/ports.ReconStore``; times are inputs.
"""
