"""Divergence between sources: price marks with a band per source pair and asset, counts of the
same flows as each source reports them, and staleness per source heartbeat.

Marks are integers in units of 10^-10 USD (the configuration's mark scale), so a band check is
exact integer arithmetic: sources ``a`` and ``b`` diverge on an asset when
``|a - b| * 10_000 > band_bps * min(a, b)``. One flat band for every feed raises false alarms
(a 1 % band on a feed whose own deviation threshold is 2 %), so bands are per (pair, asset) with
a default. A source whose last reading is older than its heartbeat is *stale*; a source that
never reported is *no data* — both are findings, because a stale feed emits nothing by itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

MARK_SCALE = 10
BPS = 10_000


@dataclass(frozen=True)
class Reading:
    source: str
    asset: str
    value: int  # 10^-10 USD per whole unit (marks) or a count
    at_ms: int


@dataclass(frozen=True)
class Finding:
    """One thing out of band. ``kind``: diverged, stale, no_data or mismatch."""

    kind: str
    subject: str  # the asset, or the key of compared counts
    sources: tuple[str, ...]
    detail: str
    spread_bps: int | None = None
    band_bps: int | None = None

    @property
    def key(self) -> str:
        """Stable identity (for de-duplicating alerts while the finding persists)."""
        return f"{self.kind}:{self.subject}:{','.join(self.sources)}"


@dataclass(frozen=True)
class Bands:
    """Band in basis points per (sorted source pair, asset), with a default for the rest."""

    default_bps: int = 100
    per_pair: Mapping[tuple[str, str, str], int] | None = None

    def band(self, a: str, b: str, asset: str) -> int:
        lo, hi = sorted((a, b))
        return (self.per_pair or {}).get((lo, hi, asset), self.default_bps)


def spread_bps(a: int, b: int) -> int:
    """|a - b| in basis points of the smaller one, rounded up (so a spread exactly on the band is
    within it only when it truly is)."""
    low = min(a, b)
    if low <= 0:
        return BPS * 100
    return -(-abs(a - b) * BPS // low)


def freshness(
    readings: Mapping[tuple[str, str], Reading],
    sources: Sequence[str],
    assets: Sequence[str],
    heartbeat_ms: Mapping[str, int],
    now_ms: int,
) -> list[Finding]:
    """Stale and no-data findings per (source, asset)."""
    out: list[Finding] = []
    for source in sources:
        beat = heartbeat_ms.get(source)
        for asset in assets:
            r = readings.get((source, asset))
            if r is None:
                out.append(Finding("no_data", asset, (source,), f"{source} has no {asset} reading"))
            elif beat is not None and now_ms - r.at_ms > beat:
                age = now_ms - r.at_ms
                out.append(
                    Finding(
                        "stale", asset, (source,), f"{source} {asset} is {age} ms old (heartbeat {beat} ms)"
                    )
                )
    return out


def mark_divergence(
    readings: Mapping[tuple[str, str], Reading],
    sources: Sequence[str],
    assets: Sequence[str],
    bands: Bands,
    fresh: set[tuple[str, str]] | None = None,
) -> list[Finding]:
    """Every pair of sources with a reading of the same asset, compared against its band (only
    fresh readings when ``fresh`` is given: a stale one is already a finding of its own)."""
    out: list[Finding] = []
    for asset in assets:
        have = [s for s in sources if (s, asset) in readings and (fresh is None or (s, asset) in fresh)]
        for a, b in combinations(have, 2):
            va, vb = readings[(a, asset)].value, readings[(b, asset)].value
            spread, band = spread_bps(va, vb), bands.band(a, b, asset)
            if spread > band:
                detail = (
                    f"{a} {va / 10**MARK_SCALE:g} vs {b} {vb / 10**MARK_SCALE:g}: {spread} bps > {band} bps"
                )
                out.append(Finding("diverged", asset, tuple(sorted((a, b))), detail, spread, band))
    return out


def count_divergence(subject: str, counts: Mapping[str, int | None], tolerance: int = 0) -> list[Finding]:
    """The same flows counted by several sources (the venue's feed, the exchange's batch report,
    clearlane's records, the base layer): a source that has no figure is ``no_data``; counts more
    than ``tolerance`` apart are a ``mismatch`` naming the pair."""
    out = [
        Finding("no_data", subject, (s,), f"{s} reports no count for {subject}")
        for s, n in counts.items()
        if n is None
    ]
    have = {s: n for s, n in counts.items() if n is not None}
    for a, b in combinations(sorted(have), 2):
        if abs(have[a] - have[b]) > tolerance:
            out.append(Finding("mismatch", subject, (a, b), f"{subject}: {a} {have[a]} vs {b} {have[b]}"))
    return out


def diverging_assets(findings: Sequence[Finding]) -> set[str]:
    return {f.subject for f in findings if f.kind == "diverged"}
