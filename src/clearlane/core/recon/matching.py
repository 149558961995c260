"""Deterministic matching of external records to internal ones.

Passes, each over what the earlier ones left open (Blnk's and Matcher's rule kinds, in order of
strength):

1. **duplicates** — an external record whose content (reference, asset, amount, account, time
   and the source's own line id) repeats one already kept, beyond as many copies as the
   internal side has, is a duplicate;
2. **reference** — records sharing a reference and asset form one group (1:1, 1:N, N:1, M:N):
   matched when the sums agree within the asset's tolerance, else partially matched
   (``AMOUNT_MISMATCH``);
3. **fuzzy reference** — a reference with a typo takes the open record whose normalised
   reference is within the Levenshtein cut-off, amount within tolerance, time within the
   window (``fuzzy.py``);
4. **amount and date** — an external record left open takes the internal record of its asset
   with the same amount, within the date window, closest in time (then id);
5. **splits** — a subset (2 to ``split_max`` lines of one account, asset and day: pairs among
   all of them, larger subsets among the first 16 still open) of external lines whose sum
   equals one open internal record of the same account (a net settlement paid in parts), and
   the mirror image;
6. **within tolerance** (assets with one) — the splits again, then amount and date, each
   taking a candidate only when it is the one within the tolerance (several: a guess);
7. what is left is unmatched.

Determinism: both sides are sorted by record id first and every choice breaks ties on ids, so the
result does not depend on input order (property-tested), and same inputs and rules give the same
groups with the same ids.
"""

from __future__ import annotations

import hashlib
import itertools
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import NamedTuple

from clearlane.core.errors import InputError
from clearlane.core.recon.breaks import Break
from clearlane.core.recon.codes import Outcome, Reason
from clearlane.core.recon.exact import NotColumnar, exact_passes, first_cover, sort_by_id, subset_sums
from clearlane.core.recon.fuzzy import FuzzyIndex
from clearlane.core.recon.records import ReconRecord

DAY_MS = 86_400_000
COLUMNAR_MIN = 512  # records in a run from which the columns save more than they cost
EXTERNAL = "external"
INTERNAL = "internal"


class MatchInputError(InputError, ValueError, code="RECON_RECORD_ID_DUPLICATE"):
    """Two records of one side share an id: outcomes are keyed by it, so it must be unique."""


class ToleranceError(InputError, ValueError, code="RECON_TOLERANCE_INVALID"):
    """A tolerance out of range: negative, or 10,000 basis points (100 %) or more."""


BPS = 10_000


@dataclass(frozen=True, slots=True)
class MatchRules:
    """A versioned rule set; never edited in place (a change is a new version)."""

    version: str = "1"
    window_ms: int = 3 * DAY_MS
    tolerance_minor: tuple[tuple[str, int], ...] = ()
    split_max: int = 8
    # Per asset, in basis points of the larger amount; next to the absolute tolerance: a gap
    # either one admits is within. Integers only: |a - b| * 10,000 <= bps * max(|a|, |b|).
    tolerance_bps: tuple[tuple[str, int], ...] = ()
    # Fuzzy references: the least similarity (percent, normalised Levenshtein) a reference
    # with a typo needs to pair; 100 turns the pass off.
    fuzzy_min_similarity: int = 80

    def __post_init__(self) -> None:
        if not 50 <= self.fuzzy_min_similarity <= 100:
            raise ToleranceError(
                f"fuzzy_min_similarity: {self.fuzzy_min_similarity} is not in 50..100 percent"
            )
        for name, value in self.tolerance_bps:
            if not 0 <= value < BPS:
                raise ToleranceError(f"tolerance_bps.{name}: {value} is not in 0..{BPS - 1} basis points")
        for name, value in self.tolerance_minor:
            if value < 0:
                raise ToleranceError(f"tolerance_minor.{name}: {value} is negative")

    def tolerance(self, asset: str) -> int:
        """The absolute tolerance of ``asset`` in minor units."""
        for name, value in self.tolerance_minor:
            if name == asset:
                return value
        return 0

    def bps(self, asset: str) -> int:
        """The percentage tolerance of ``asset`` in basis points."""
        for name, value in self.tolerance_bps:
            if name == asset:
                return value
        return 0

    def tolerant(self, asset: str) -> bool:
        return bool(self.tolerance(asset) or self.bps(asset))

    def within(self, asset: str, a: int, b: int) -> bool:
        """``a`` and ``b`` agree within the asset's absolute or percentage tolerance."""
        gap = abs(a - b)
        return gap <= self.tolerance(asset) or gap * BPS <= self.bps(asset) * max(abs(a), abs(b))

    def reach(self, asset: str, amount: int) -> int:
        """The widest gap from ``amount`` that can be within (a search bound; ``within`` then
        decides): gap * 10,000 <= bps * (|amount| + gap) gives gap <= bps * |amount| / (10,000 - bps)."""
        bps = self.bps(asset)
        return max(self.tolerance(asset), -(-bps * abs(amount) // (BPS - bps)))

    def cover_tolerance(self, asset: str, target: int) -> int:
        """The gap a split's parts may have from ``target``: bps of the target alone, so every
        subset found is within (``max`` can only be larger) — stricter by at most bps²."""
        return max(self.tolerance(asset), self.bps(asset) * abs(target) // BPS)


class MatchGroup(NamedTuple):
    """Records of both sides decided together (a tuple: millions are made per run)."""

    group_id: str
    outcome: Outcome
    reason: Reason
    asset: str
    external: tuple[str, ...]
    internal: tuple[str, ...]
    external_minor: int
    internal_minor: int
    score: int


class RecordOutcome(NamedTuple):
    side: str
    record_id: str
    outcome: Outcome
    reason: Reason
    group_id: str | None


@dataclass
class MatchResult:
    groups: list[MatchGroup] = field(default_factory=list)
    outcomes: list[RecordOutcome] = field(default_factory=list)

    def breaks(self, records: Mapping[tuple[str, str], ReconRecord] | None = None) -> list[Break]:
        """One break per partial group and per record left unmatched or duplicated; with the
        records by (side, id), a record's break carries its asset and amount (its severity)."""
        out = [
            Break(g.reason, g.group_id, f"external {g.external_minor}, internal {g.internal_minor}",
                  g.asset, abs(g.external_minor - g.internal_minor))
            for g in self.groups if g.outcome is Outcome.PARTIALLY_MATCHED
        ]  # fmt: skip
        for o in self.outcomes:
            if o.outcome not in (Outcome.UNMATCHED, Outcome.DUPLICATE):
                continue
            r = None if records is None else records.get((o.side, o.record_id))
            asset, amount = ("", 0) if r is None else (r.asset, abs(r.amount_minor))
            out.append(Break(o.reason, f"{o.side}:{o.record_id}", o.outcome.value, asset, amount))
        return out

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for o in self.outcomes:
            out[f"{o.side}.{o.outcome.value}"] += 1
        return dict(sorted(out.items()))


def _make_group(
    rules: MatchRules, reason: Reason, ext: list[ReconRecord], intl: list[ReconRecord], score: int
) -> MatchGroup:
    if len(ext) == 1 and len(intl) == 1:  # the common case, without generator overhead
        ext_sum, int_sum = ext[0].amount_minor, intl[0].amount_minor
    else:
        ext_sum, int_sum = sum(r.amount_minor for r in ext), sum(r.amount_minor for r in intl)
    asset = (ext or intl)[0].asset
    within = rules.within(asset, ext_sum, int_sum)
    outcome = Outcome.MATCHED if within else Outcome.PARTIALLY_MATCHED
    if not within:
        reason, score = Reason.AMOUNT_MISMATCH, score // 2
    elif ext_sum != int_sum and reason is Reason.MATCHED_REFERENCE:
        reason = Reason.MATCHED_WITHIN_TOLERANCE
    ext_ids = tuple(sorted(r.record_id for r in ext))
    int_ids = tuple(sorted(r.record_id for r in intl))
    return MatchGroup(
        _group_id(ext_ids, int_ids), outcome, reason, asset, ext_ids, int_ids, ext_sum, int_sum, score
    )


class _Run:
    """The open records of both sides (dicts in id order) and what has been decided so far."""

    def __init__(
        self,
        ext: dict[str, ReconRecord],
        intl: dict[str, ReconRecord],
        rules: MatchRules,
        result: MatchResult,
        columnar: bool = False,
    ) -> None:
        self.rules = rules
        self.ext = ext
        self.int = intl
        self.result = result
        self.columnar = columnar

    def group(self, reason: Reason, ext: list[ReconRecord], intl: list[ReconRecord], score: int) -> None:
        g = _make_group(self.rules, reason, ext, intl, score)
        self.result.groups.append(g)
        for side, ids, pool in ((EXTERNAL, g.external, self.ext), (INTERNAL, g.internal, self.int)):
            for rid in ids:
                del pool[rid]
                self.result.outcomes.append(RecordOutcome(side, rid, g.outcome, g.reason, g.group_id))

    def single(self, side: str, rid: str, outcome: Outcome, reason: Reason) -> None:
        del (self.ext if side == EXTERNAL else self.int)[rid]
        self.result.outcomes.append(RecordOutcome(side, rid, outcome, reason, None))


def _sorted(records: Sequence[ReconRecord], side: str, columnar: bool) -> list[ReconRecord]:
    if columnar:
        ordered, twice = sort_by_id(records)
    else:
        ordered = sorted(records, key=lambda r: r.record_id)
        twice = next(
            (b.record_id for a, b in itertools.pairwise(ordered) if a.record_id == b.record_id), None
        )
    if twice is not None:
        raise MatchInputError(f"{side} record_id {twice!r}: appears twice")
    return ordered


def _group_id(ext_ids: tuple[str, ...], int_ids: tuple[str, ...]) -> str:
    text = "\x1f".join(ext_ids) + "\x1e" + "\x1f".join(int_ids)
    return "mg-" + hashlib.sha256(text.encode()).hexdigest()[:20]


def _duplicates(run: _Run) -> None:
    internal_copies: dict[tuple[str, str, int], int] = defaultdict(int)
    for r in run.int.values():
        if r.reference:
            internal_copies[(r.reference, r.asset, r.amount_minor)] += 1
    kept: dict[tuple[str, str, int, str, int, str], int] = defaultdict(int)
    for r in list(run.ext.values()):
        if not r.reference:
            continue
        key = (r.reference, r.asset, r.amount_minor, r.account, r.at_ms, r.source_ref)
        kept[key] += 1
        if kept[key] > max(1, internal_copies[key[:3]]):
            run.single(EXTERNAL, r.record_id, Outcome.DUPLICATE, Reason.DUPLICATE_RECORD)


def _by_reference(run: _Run) -> None:
    ext: dict[tuple[str, str], list[ReconRecord]] = defaultdict(list)
    for r in run.ext.values():
        if r.reference:
            ext[(r.reference, r.asset)].append(r)
    intl: dict[tuple[str, str], list[ReconRecord]] = defaultdict(list)
    for r in run.int.values():
        if r.reference and (r.reference, r.asset) in ext:
            intl[(r.reference, r.asset)].append(r)
    for key in sorted(intl):
        run.group(Reason.MATCHED_REFERENCE, ext[key], intl[key], 100)


class _AmountIndex:
    """Open internal records per asset and amount, each list sorted by (time, id)."""

    def __init__(self, records: Iterable[ReconRecord]) -> None:
        lists: dict[tuple[str, int], list[tuple[int, str]]] = defaultdict(list)
        for r in records:
            lists[(r.asset, r.amount_minor)].append((r.at_ms, r.record_id))
        self.lists = {k: sorted(v) for k, v in lists.items()}
        amounts: dict[str, list[int]] = defaultdict(list)
        for asset, amount in self.lists:
            amounts[asset].append(amount)
        self.amounts = {a: sorted(v) for a, v in amounts.items()}
        self.used: set[str] = set()

    def best(self, r: ReconRecord, rules: MatchRules, *, tolerant: bool) -> tuple[str | None, int]:
        """Exact amount (``tolerant`` false): the nearest in time. Within the tolerance: only an
        unambiguous candidate — one amount within it that has an open record in the window —
        since the nearest amount among several is a guess, not evidence. With the number of
        candidate amounts seen."""
        amounts = self.amounts.get(r.asset, [])
        reach = rules.reach(r.asset, r.amount_minor) if tolerant else 0
        lo, hi = (
            bisect_left(amounts, r.amount_minor - reach),
            bisect_right(amounts, r.amount_minor + reach),
        )
        best: tuple[int, int, str] | None = None
        window_ms, seen = rules.window_ms, 0
        for amount in amounts[lo:hi]:
            if reach and not rules.within(r.asset, r.amount_minor, amount):
                continue
            found = self._nearest(self.lists[(r.asset, amount)], r.at_ms, window_ms)
            if found is not None:
                seen += 1
                key = (abs(amount - r.amount_minor), found[0], found[1])
                best = key if best is None or key < best else best
        return (None if best is None or (tolerant and seen > 1) else best[2]), seen

    def _nearest(self, items: list[tuple[int, str]], at_ms: int, window_ms: int) -> tuple[int, str] | None:
        i = bisect_left(items, (at_ms - window_ms, ""))
        best: tuple[int, str] | None = None
        while i < len(items) and items[i][0] <= at_ms + window_ms:
            t, rid = items[i]
            if rid not in self.used and (best is None or (abs(t - at_ms), rid) < best):
                best = (abs(t - at_ms), rid)
            i += 1
        return best


def _by_fuzzy_reference(run: _Run) -> None:
    """A reference with a typo (one or a few characters) pairs with its own record before the
    amount/date pass could hand it the nearest amount; scored below an exact reference."""
    rules = run.rules
    if rules.fuzzy_min_similarity >= 100 or not any(r.reference for r in run.ext.values()):
        return
    index = FuzzyIndex(run.int.values(), rules.fuzzy_min_similarity)
    for r in list(run.ext.values()):
        found = index.best(r, rules.reach(r.asset, r.amount_minor), rules.within, rules.window_ms)
        if found is not None:
            rid, distance = found
            index.used.add(rid)
            run.group(Reason.MATCHED_FUZZY_REFERENCE, [r], [run.int[rid]], max(60, 90 - 10 * distance))


def _by_amount_and_date(run: _Run, *, tolerant: bool = False) -> None:
    """Exact amounts first (before the splits); then, with a tolerance, the amounts within it
    (after the splits, so a split's part is not taken for a near amount)."""
    if tolerant and not any(run.rules.tolerant(a) for a in {r.asset for r in run.ext.values()}):
        return
    index = _AmountIndex(run.int.values())
    for r in list(run.ext.values()):
        if tolerant and not run.rules.tolerant(r.asset):
            continue
        rid, seen = index.best(r, run.rules, tolerant=tolerant)
        if rid is None and seen > 1:  # several near amounts: the operator's to choose
            run.single(EXTERNAL, r.record_id, Outcome.UNMATCHED, Reason.AMBIGUOUS_CANDIDATES)
        elif rid is not None:
            index.used.add(rid)
            days = abs(run.int[rid].at_ms - r.at_ms) // DAY_MS
            run.group(Reason.MATCHED_AMOUNT_DATE, [r], [run.int[rid]], max(50, 80 - 10 * days))


# Lines of one account and day searched for a covering subset of three or more (C(16, 8) =
# 12,870): the first 16 still open. Pairs are searched among all of them (in O(k)).
SPLIT_LINES_MAX = 16


def _split_groups(pool: dict[str, ReconRecord]) -> list[list[ReconRecord]]:
    groups: dict[tuple[str, str, int], list[ReconRecord]] = defaultdict(list)
    for r in pool.values():
        if r.account:
            groups[(r.asset, r.account, r.at_ms // DAY_MS)].append(r)
    return [groups[k] for k in sorted(groups) if len(groups[k]) >= 2]


def _subset_sums(parts: list[ReconRecord], size_max: int) -> dict[int, tuple[int, ...]]:
    """Sum -> the first subset (by size, then lexicographic in id order) of 2..size_max parts
    with that sum; computed once per group, not once per candidate."""
    table: dict[int, tuple[int, ...]] = {}
    amounts = [p.amount_minor for p in parts]
    for size in range(2, min(size_max, len(parts)) + 1):
        for combo in combinations(range(len(parts)), size):
            table.setdefault(sum(amounts[i] for i in combo), combo)
    return table


def _first_pair(parts: list[ReconRecord], target: int) -> tuple[int, ...] | None:
    """The lexicographically first pair (i < j) of parts summing to ``target`` — what the table
    would answer for size 2, in O(k): most settlements paid in parts are paid in two."""
    later: dict[int, list[int]] = defaultdict(list)
    for j, p in enumerate(parts):
        later[p.amount_minor].append(j)
    for i, p in enumerate(parts):
        for j in later.get(target - p.amount_minor, ()):
            if j > i:
                return (i, j)
    return None


def _covering(table: dict[int, tuple[int, ...]], target: int, tolerance: int) -> tuple[int, ...] | None:
    """The first subset within ``tolerance``; with a tolerance, only if one sum is within it."""
    if tolerance == 0:
        return table.get(target)
    hits = [combo for total, combo in table.items() if abs(total - target) <= tolerance]
    return hits[0] if len(hits) == 1 else None


class _Cover:
    """Which subset of a group's lines covers a target: the first one in (size, lexicographic)
    order within the tolerance (with a tolerance: the one sum within it, or none — several are
    a guess) — what ``_covering`` answers from ``_subset_sums``. In columns
    (``exact.subset_sums``) when amounts are int64-safe, else from the dict table; built once
    per state of the group's lines."""

    def __init__(self, parts: list[ReconRecord], size_max: int, columnar: bool) -> None:
        amounts = [p.amount_minor for p in parts]
        self.sums = subset_sums(amounts, size_max) if columnar else None
        self.table = None if columnar else _subset_sums(parts, size_max)
        self.size_max = size_max
        self.k = len(parts)

    def first(self, target: int, tolerance: int) -> tuple[int, ...] | None:
        if self.table is not None:
            return _covering(self.table, target, tolerance)
        return first_cover(self.sums, self.k, self.size_max, target, tolerance)


def _split_group(
    run: _Run, many_side: str, parts: list[ReconRecord], chosen: tuple[int, ...], one: ReconRecord
) -> list[ReconRecord]:
    lines = [parts[i] for i in chosen]
    ext, intl = (lines, [one]) if many_side == EXTERNAL else ([one], lines)
    run.group(Reason.MATCHED_SPLIT, ext, intl, 60)
    return [p for i, p in enumerate(parts) if i not in chosen]


def _splits(run: _Run, many_side: str, *, tolerant: bool = False) -> None:
    """Several open lines of one account, asset and day that add up to one open record of the
    same account on the other side (a net settlement paid in parts, or the mirror image).
    Pairs first, for every candidate in id order (O(k) each: most settlements paid in parts are
    paid in two); then larger subsets for the candidates left, from a table rebuilt only after
    a match. ``tolerant``: a second round, after the exact one, for assets with a tolerance:
    the table answers pairs too, and only a subset whose sum is the one within the tolerance."""
    many_pool, one_pool = (run.ext, run.int) if many_side == EXTERNAL else (run.int, run.ext)
    by_account: dict[tuple[str, str], list[ReconRecord]] = defaultdict(list)
    for o in one_pool.values():
        if o.account:
            by_account[(o.asset, o.account)].append(o)
    for parts in _split_groups(many_pool):
        first = parts[0]
        if tolerant and not run.rules.tolerant(first.asset):
            continue
        candidates = [
            one for one in by_account.get((first.asset, first.account), [])
            if one.record_id in one_pool and abs(one.at_ms - first.at_ms) <= run.rules.window_ms
        ]  # fmt: skip
        left: list[ReconRecord] = []
        for one in candidates if not tolerant else ():
            pair = _first_pair(parts, one.amount_minor) if len(parts) >= 2 else None
            if pair is None:
                left.append(one)
            else:
                parts = _split_group(run, many_side, parts, pair, one)
        table: _Cover | None = None
        for one in left if not tolerant else candidates:
            if len(parts) < 2 if tolerant else len(parts) < 3:
                break
            table = table or _Cover(parts[:SPLIT_LINES_MAX], run.rules.split_max, run.columnar)
            gap = run.rules.cover_tolerance(one.asset, one.amount_minor) if tolerant else 0
            combo = table.first(one.amount_minor, gap)
            if combo is not None:
                parts, table = _split_group(run, many_side, parts, combo, one), None


def _exact(ext: list[ReconRecord], intl: list[ReconRecord], rules: MatchRules) -> _Run:
    """The duplicate and reference passes in columns (``exact.py``); the run then holds only
    the residue for the tolerance, date-window and split passes."""
    result = MatchResult()
    decided = exact_passes(ext, intl, dict(rules.tolerance_minor), dict(rules.tolerance_bps))
    for k in decided.duplicates.tolist():
        result.outcomes.append(
            RecordOutcome(EXTERNAL, ext[k].record_id, Outcome.DUPLICATE, Reason.DUPLICATE_RECORD, None)
        )
    groups, outcomes = result.groups, result.outcomes
    for ke, ki, reason in zip(
        decided.pair_ext.tolist(), decided.pair_int.tolist(), decided.pair_reason, strict=True
    ):
        e, i = ext[ke], intl[ki]
        outcome, score = (
            (Outcome.PARTIALLY_MATCHED, 50) if reason is Reason.AMOUNT_MISMATCH else (Outcome.MATCHED, 100)
        )
        gid = _group_id((e.record_id,), (i.record_id,))
        groups.append(MatchGroup(gid, outcome, reason, e.asset, (e.record_id,), (i.record_id,), e.amount_minor,
                                 i.amount_minor, score))  # fmt: skip
        outcomes.append(RecordOutcome(EXTERNAL, e.record_id, outcome, reason, gid))
        outcomes.append(RecordOutcome(INTERNAL, i.record_id, outcome, reason, gid))
    for me, mi in decided.many:
        g = _make_group(rules, Reason.MATCHED_REFERENCE, [ext[k] for k in me], [intl[k] for k in mi], 100)
        groups.append(g)
        outcomes.extend(RecordOutcome(EXTERNAL, rid, g.outcome, g.reason, g.group_id) for rid in g.external)
        outcomes.extend(RecordOutcome(INTERNAL, rid, g.outcome, g.reason, g.group_id) for rid in g.internal)
    open_ext = {r.record_id: r for r in itertools.compress(ext, decided.ext_open.tolist())}
    open_int = {r.record_id: r for r in itertools.compress(intl, decided.int_open.tolist())}
    return _Run(open_ext, open_int, rules, result, columnar=True)


def match(
    external: Sequence[ReconRecord],
    internal: Sequence[ReconRecord],
    rules: MatchRules,
    *,
    columnar: bool | None = None,
) -> MatchResult:
    """Match both sides; every record ends with exactly one outcome. The exact-key passes run
    in columns for a run of ``COLUMNAR_MIN`` records or more (``columnar`` forces the choice)
    unless an amount is too large for int64 sums; record by record otherwise — the same
    decisions either way."""
    use = len(external) + len(internal) >= COLUMNAR_MIN if columnar is None else columnar
    ext, intl = _sorted(external, EXTERNAL, use), _sorted(internal, INTERNAL, use)
    if use:
        try:
            return _residue(_exact(ext, intl, rules))
        except NotColumnar:
            pass
    run = _Run({r.record_id: r for r in ext}, {r.record_id: r for r in intl}, rules, MatchResult())
    _duplicates(run)
    _by_reference(run)
    return _residue(run)


def match_records(
    external: Sequence[ReconRecord], internal: Sequence[ReconRecord], rules: MatchRules
) -> MatchResult:
    """Every pass record by record: the reference the columnar passes are tested against."""
    return match(external, internal, rules, columnar=False)


def _residue(run: _Run) -> MatchResult:
    _by_fuzzy_reference(run)
    _by_amount_and_date(run)
    _splits(run, EXTERNAL)
    _splits(run, INTERNAL)
    if any(run.rules.tolerant(r.asset) for r in itertools.chain(run.ext.values(), run.int.values())):
        _splits(run, EXTERNAL, tolerant=True)
        _splits(run, INTERNAL, tolerant=True)
        _by_amount_and_date(run, tolerant=True)
    for rid in list(run.ext):
        run.single(EXTERNAL, rid, Outcome.UNMATCHED, Reason.UNMATCHED_EXTERNAL)
    for rid in list(run.int):
        run.single(INTERNAL, rid, Outcome.UNMATCHED, Reason.UNMATCHED_INTERNAL)
    # Tuple order: group ids, and (side, record id) pairs, are unique, so no later field is compared.
    run.result.groups.sort()
    run.result.outcomes.sort()
    return run.result


__all__ = [
    "MatchGroup", "MatchInputError", "MatchResult", "MatchRules", "RecordOutcome", "ToleranceError", "match",
    "match_records",
]  # fmt: skip
