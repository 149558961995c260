"""Monitoring's application logic (issue 15): canaries sent by ``serve`` on the engine clock
down every path of the routing table and judged hop by hop (canaries.py), divergence between
sources and per-source staleness (sources.py), trust scores, the L2-halt policy and alerts
raised on the ``alert.raised`` path (service.py). The pure rules are core/monitor."""
