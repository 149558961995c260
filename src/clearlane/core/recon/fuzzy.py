"""Fuzzy references: the partner of a record whose reference carries a typo.

Run after the exact-key passes and before amount/date, so a reference with one wrong, missing or
extra character still finds its own record rather than the nearest amount. References are
normalised (upper case, letters and digits only) and compared by normalised Levenshtein
similarity (``rapidfuzz``'s Levenshtein distance, in integers: a pair is close when
``distance × 100 ≤ (100 − min_similarity) × longer length``), the rules' cut-off in percent.

Blocking keeps it linear: one edit leaves the first or the last half of a reference intact, so
the open records are indexed by (asset, first half) and (asset, last half), each bucket sorted
by amount, and a record looks only at the buckets of its own halves (lengths ±1 for an inserted
or dropped character) and, in each, only the amounts its tolerance can reach. Deterministic:
ties go to the smaller distance, then amount gap, then time gap, then record id.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable

from rapidfuzz.distance import Levenshtein

from clearlane.core.recon.records import ReconRecord

_NOT_ALNUM = re.compile(r"[^0-9A-Z]")


def normalise(reference: str) -> str:
    """What a bank may alter in a reference without changing it: case, spaces, punctuation."""
    return _NOT_ALNUM.sub("", reference.upper())


def _halves(ref: str, length: int) -> tuple[str, str]:
    h = max(1, length // 2)
    return ref[:h], ref[-h:]


class FuzzyIndex:
    """Open records of one side by (asset, half of the normalised reference), sorted by amount."""

    def __init__(self, records: Iterable[ReconRecord], min_similarity: int) -> None:
        buckets: dict[tuple[str, str, str], list[tuple[int, str]]] = defaultdict(list)
        self.refs: dict[str, str] = {}
        self.records: dict[str, ReconRecord] = {}
        for r in records:
            ref = normalise(r.reference)
            if len(ref) < 4:  # too short for a typo to be told from another reference
                continue
            self.refs[r.record_id], self.records[r.record_id] = ref, r
            first, last = _halves(ref, len(ref))
            buckets[(r.asset, "<", first)].append((r.amount_minor, r.record_id))
            buckets[(r.asset, ">", last)].append((r.amount_minor, r.record_id))
        self.buckets = {k: sorted(v) for k, v in buckets.items()}
        self.slack = 100 - min_similarity  # percent of the longer reference that may differ
        self.used: set[str] = set()

    def _candidates(self, r: ReconRecord, ref: str, reach: int) -> set[str]:
        out: set[str] = set()
        for length in (len(ref) - 1, len(ref), len(ref) + 1):
            first, last = _halves(ref, length)
            for key in ((r.asset, "<", first), (r.asset, ">", last)):
                items = self.buckets.get(key, [])
                lo = bisect_left(items, (r.amount_minor - reach, ""))
                hi = bisect_right(items, (r.amount_minor + reach, "\uffff"))
                out.update(rid for _, rid in items[lo:hi] if rid not in self.used)
        return out

    def best(
        self, r: ReconRecord, reach: int, within: Callable[[str, int, int], bool], window_ms: int
    ) -> tuple[str, int] | None:
        """The open record whose reference is closest to ``r``'s (at or above the cut-off),
        within the amount tolerance and the date window; with the edit distance."""
        ref = normalise(r.reference)
        if len(ref) < 4:
            return None
        best: tuple[int, int, int, str] | None = None
        for rid in self._candidates(r, ref, reach):
            other = self.records[rid]
            if abs(other.at_ms - r.at_ms) > window_ms or not within(
                r.asset, r.amount_minor, other.amount_minor
            ):
                continue
            theirs = self.refs[rid]
            cutoff = self.slack * max(len(ref), len(theirs)) // 100
            distance = Levenshtein.distance(ref, theirs, score_cutoff=cutoff)
            if distance > cutoff:
                continue
            key = (distance, abs(other.amount_minor - r.amount_minor), abs(other.at_ms - r.at_ms), rid)
            best = key if best is None or key < best else best
        return None if best is None else (best[3], best[0])


__all__ = ["FuzzyIndex", "normalise"]
