"""Monitoring's pure rules (issue 15): canary verdicts and the paths canaries take
(canary.py), divergence bands and per-source staleness (divergence.py), trust scores over 1 h
and 24 h windows (trust.py) and the routing policy that halts an asset's L2 routing while its
marks diverge (policy.py). Time is always an argument (engine milliseconds); nothing here reads a
clock or does I/O. The application that sends canaries and feeds these rules is node/monitor."""
