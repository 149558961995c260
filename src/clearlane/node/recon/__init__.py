"""Reconciliation's application side: reading sources (camt.053/054 with lxml, MT940 with
``mt-940``, the exchange's batch reports), importing them once, building the internal records
from the store, running the matcher and the batch-report comparison, and driving exception
cases. Storage goes through ``node.ports.ReconStore``; the rules are ``core.recon``'s.
"""
