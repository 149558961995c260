"""The matcher: each pass on a small case, then properties over random inputs — the result does
not depend on input order, every record ends in exactly one outcome, and matched groups balance."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.recon.codes import Outcome, Reason
from clearlane.core.recon.matching import DAY_MS, MatchInputError, MatchRules, match, match_records
from clearlane.core.recon.records import ReconRecord

T0 = 1_763_700_000_000
RULES = MatchRules()


def rec(
    rid: str, amount: int, *, ref: str = "", at: int = T0, account: str = "", asset: str = "USD"
) -> ReconRecord:
    return ReconRecord(rid, "test", asset, amount, at, ref, account)


def outcome_of(result, side: str, rid: str) -> tuple[Outcome, Reason]:  # type: ignore[no-untyped-def]
    (o,) = [o for o in result.outcomes if o.side == side and o.record_id == rid]
    return o.outcome, o.reason


def test_reference_one_to_one_and_one_to_many() -> None:
    ext = [rec("e1", 500, ref="B1.P1"), rec("e2", 300, ref="B2.P1"), rec("e3", 200, ref="B2.P1")]
    intl = [rec("i1", 500, ref="B1.P1"), rec("i2", 500, ref="B2.P1")]
    result = match(ext, intl, RULES)
    assert {(g.external, g.internal, g.outcome) for g in result.groups} == {
        (("e1",), ("i1",), Outcome.MATCHED),
        (("e2", "e3"), ("i2",), Outcome.MATCHED),
    }
    assert all(o.reason is Reason.MATCHED_REFERENCE for o in result.outcomes)


def test_reference_amount_mismatch_is_partial_and_tolerance_per_asset() -> None:
    ext, intl = [rec("e1", 505, ref="R")], [rec("i1", 500, ref="R")]
    assert outcome_of(match(ext, intl, RULES), "external", "e1") == (
        Outcome.PARTIALLY_MATCHED,
        Reason.AMOUNT_MISMATCH,
    )
    loose = MatchRules(tolerance_minor=(("USD", 5),))
    assert outcome_of(match(ext, intl, loose), "internal", "i1") == (
        Outcome.MATCHED,
        Reason.MATCHED_WITHIN_TOLERANCE,
    )
    (brk,) = match(ext, intl, RULES).breaks()
    assert brk.code is Reason.AMOUNT_MISMATCH and brk.amount_minor == 5


def test_amount_and_date_window_takes_the_closest() -> None:
    ext = [rec("e1", 700, at=T0 + DAY_MS)]
    intl = [
        rec("far", 700, at=T0 - DAY_MS),
        rec("near", 700, at=T0 + DAY_MS + 5),
        rec("out", 700, at=T0 + 9 * DAY_MS),
    ]
    result = match(ext, intl, RULES)
    (group,) = result.groups
    assert group.internal == ("near",) and group.reason is Reason.MATCHED_AMOUNT_DATE
    assert outcome_of(result, "internal", "out") == (Outcome.UNMATCHED, Reason.UNMATCHED_INTERNAL)


def test_split_settlement_matches_many_lines_to_one_instruction() -> None:
    ext = [rec("e1", 600, account="P1"), rec("e2", 400, account="P1", at=T0 + 60_000)]
    intl = [rec("net", 1000, account="P1", at=T0 + 1)]
    (group,) = match(ext, intl, RULES).groups
    assert (group.external, group.internal, group.reason) == (("e1", "e2"), ("net",), Reason.MATCHED_SPLIT)
    mirror = match(intl, ext, RULES)
    assert [g.reason for g in mirror.groups] == [Reason.MATCHED_SPLIT]


def test_duplicate_external_line() -> None:
    ext = [rec("e1", 500, ref="R"), rec("e2", 500, ref="R")]
    result = match(ext, [rec("i1", 500, ref="R")], RULES)
    assert outcome_of(result, "external", "e2") == (Outcome.DUPLICATE, Reason.DUPLICATE_RECORD)
    assert outcome_of(result, "external", "e1")[0] is Outcome.MATCHED
    twice = match(ext, [rec("i1", 500, ref="R"), rec("i2", 500, ref="R")], RULES)
    assert all(o.outcome is Outcome.MATCHED for o in twice.outcomes)  # two real payments


def test_record_ids_must_be_unique_per_side() -> None:
    with pytest.raises(MatchInputError, match="appears twice"):
        match([rec("e1", 1), rec("e1", 2)], [], RULES)


_refs = st.sampled_from(["", "", "A", "B", "C", "D"])
_records = st.lists(
    st.tuples(
        _refs, st.integers(-3, 3).map(lambda x: x * 100), st.integers(0, 6), st.sampled_from(["", "P1", "P2"])
    ),
    max_size=24,
)


def _build(prefix: str, rows: list[tuple[str, int, int, str]]) -> list[ReconRecord]:
    return [
        rec(f"{prefix}{i:03d}", a, ref=r, at=T0 + d * DAY_MS // 2, account=p)
        for i, (r, a, d, p) in enumerate(rows)
    ]


@settings(max_examples=200, deadline=None)
@given(_records, _records, st.randoms(use_true_random=False))
def test_properties(ext_rows, int_rows, rnd: random.Random) -> None:  # type: ignore[no-untyped-def]
    ext, intl = _build("e", ext_rows), _build("i", int_rows)
    result = match(ext, intl, RULES)
    # every record ends in exactly one outcome
    keys = [(o.side, o.record_id) for o in result.outcomes]
    assert len(keys) == len(set(keys)) == len(ext) + len(intl)
    # totals reconcile: a matched group's sums are equal on both sides (tolerance 0)
    for g in result.groups:
        assert (g.outcome is Outcome.MATCHED) == (g.external_minor == g.internal_minor)
    by_id = {r.record_id: r.amount_minor for r in ext + intl}
    matched = [o for o in result.outcomes if o.outcome is Outcome.MATCHED]
    assert sum(by_id[o.record_id] for o in matched if o.side == "external") == sum(
        by_id[o.record_id] for o in matched if o.side == "internal"
    )
    # order-independent
    rnd.shuffle(ext)
    rnd.shuffle(intl)
    again = match(ext, intl, RULES)
    assert again.groups == result.groups and again.outcomes == result.outcomes


_dense = st.lists(
    st.tuples(
        st.sampled_from(["", "A", "B", "C"]), st.sampled_from([100, 101, 200, -100]), st.integers(0, 2),
        st.sampled_from(["", "P1"]), st.sampled_from(["USD", "EUR"]), st.sampled_from(["", "S1"]),
    ),
    max_size=20,
)  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(
    _dense, _dense, st.sampled_from([(), (("USD", 1),), (("EUR", 100), ("USD", 0))]),
    st.sampled_from([(), (("USD", 100),), (("EUR", 50), ("USD", 9_999))]),
)  # fmt: skip
def test_columnar_passes_decide_as_the_record_passes(ext_rows, int_rows, tolerance, bps) -> None:  # type: ignore[no-untyped-def]
    """Repeated lines, M:N references, tolerances per asset: the columnar exact passes give the
    same groups and outcomes as the record-at-a-time ones."""

    def build(prefix: str, rows: list[tuple[str, int, int, str, str, str]]) -> list[ReconRecord]:
        return [ReconRecord(f"{prefix}{i:03d}", "x", asset, amount, T0 + day * DAY_MS, ref, acct, src)
                for i, (ref, amount, day, acct, asset, src) in enumerate(rows)]  # fmt: skip

    ext, intl = build("e", ext_rows), build("i", int_rows)
    rules = MatchRules(tolerance_minor=tolerance, tolerance_bps=bps)
    fast, slow = match(ext, intl, rules, columnar=True), match_records(ext, intl, rules)
    assert fast.groups == slow.groups and fast.outcomes == slow.outcomes
    # every matched group is within the rules (absolute or percentage), in integers
    assert all(rules.within(g.asset, g.external_minor, g.internal_minor) for g in fast.groups
               if g.outcome is Outcome.MATCHED)  # fmt: skip


def test_percentage_tolerance_is_exact_in_integers() -> None:
    """|a - b| × 10,000 <= bps × max(|a|, |b|): 0.5 % of 1,000.00 is 5.00, not a cent more."""
    rules = MatchRules(tolerance_bps=(("USD", 50),))
    assert rules.within("USD", 100_000, 100_500) and not rules.within("USD", 100_000, 100_503)
    assert rules.within("USD", -100_000, -100_502) and not rules.within("EUR", 100_000, 100_001)
    assert rules.within("USD", 10**30, 10**30 + 5 * 10**27)  # no overflow: Python integers
    both = MatchRules(tolerance_minor=(("USD", 7),), tolerance_bps=(("USD", 50),))
    assert both.within("USD", 100, 107) and both.within("USD", 100_000, 100_500)
    ext, intl = [rec("e1", 100_499, ref="R")], [rec("i1", 100_000, ref="R")]
    assert outcome_of(match(ext, intl, rules), "external", "e1") == (
        Outcome.MATCHED,
        Reason.MATCHED_WITHIN_TOLERANCE,
    )
    # amount and date: the closest within the percentage; splits: parts within bps of the target
    ext = [rec("e2", 200_900, at=T0 + DAY_MS), rec("p1", 60_000, account="A"), rec("p2", 40_300, account="A")]
    intl = [rec("i2", 200_000), rec("i3", 202_000), rec("n1", 100_000, account="A")]
    result = match(ext, intl, rules)
    assert {(g.external, g.internal, g.reason) for g in result.groups} == {
        (("e2",), ("i2",), Reason.MATCHED_AMOUNT_DATE),
        (("p1", "p2"), ("n1",), Reason.MATCHED_SPLIT),
    }
    for bad in ((("USD", 10_000),), (("USD", -1),)):
        with pytest.raises(ValueError, match=r"tolerance_bps\.USD"):
            MatchRules(tolerance_bps=bad)


def test_amounts_beyond_int64_sums_take_the_record_passes() -> None:
    big = [rec("e1", 2**70, ref="A"), rec("e2", -(2**63), ref="B")]
    result = match(big, [rec("i1", 2**70, ref="A"), rec("i2", 5, ref="B")], RULES, columnar=True)
    assert result == match_records(big, [rec("i1", 2**70, ref="A"), rec("i2", 5, ref="B")], RULES)
    assert outcome_of(result, "external", "e1") == (Outcome.MATCHED, Reason.MATCHED_REFERENCE)


def test_fuzzy_reference_pairs_a_typo_with_its_own_record() -> None:
    """A reference with a typo (substituted, dropped or added character; case and punctuation
    ignored) takes its own record, not the nearest amount; scored below an exact reference."""
    ext = [
        rec("e1", 1_000, ref="B00012345/P00042"),  # one character changed
        rec("e2", 2_000, ref="b0001234/p00043"),  # one dropped, lower case
        rec("e3", 3_000, ref="ZZZZZZZZZZ"),  # nothing like any reference: amount and date
        rec("e4", 4_000, ref="ABC"),  # too short to judge
    ]
    intl = [
        rec("i1", 1_000, ref="B00012845/P00042", at=T0 + DAY_MS),
        rec("near1", 1_000, ref="Q99999999/X11111"),  # same amount, closer in time, other reference
        rec("i2", 2_000, ref="B00012348/P00043"),
        rec("i3", 3_000, ref="B00099999/P00099"),
        rec("i4", 4_000, ref="ABD"),
    ]
    result = match(ext, intl, RULES)
    pairs = {(g.external, g.internal): (g.reason, g.score) for g in result.groups}
    assert pairs[(("e1",), ("i1",))] == (Reason.MATCHED_FUZZY_REFERENCE, 80)
    assert pairs[(("e2",), ("i2",))][0] is Reason.MATCHED_FUZZY_REFERENCE
    assert pairs[(("e3",), ("i3",))][0] is Reason.MATCHED_AMOUNT_DATE
    assert pairs[(("e4",), ("i4",))][0] is Reason.MATCHED_AMOUNT_DATE
    rnd = random.Random(3)
    for _ in range(3):
        rnd.shuffle(ext)
        rnd.shuffle(intl)
        assert match(ext, intl, RULES) == result
    off = match(ext, intl, MatchRules(fuzzy_min_similarity=100))
    assert outcome_of(off, "external", "e1") == (Outcome.MATCHED, Reason.MATCHED_AMOUNT_DATE)
    assert off.groups != result.groups


def test_near_amounts_pair_only_when_unambiguous() -> None:
    """Within a tolerance, a line without a reference takes a near amount only if it is the
    one such amount in the window; among several it stays open (``AMBIGUOUS_CANDIDATES``).
    Exact amounts come first."""
    rules = MatchRules(tolerance_bps=(("USD", 50),))
    one = match([rec("e1", 100_300)], [rec("i1", 100_000), rec("far", 200_000)], rules)
    assert outcome_of(one, "external", "e1") == (Outcome.MATCHED, Reason.MATCHED_AMOUNT_DATE)
    two = match([rec("e1", 100_300)], [rec("i1", 100_000), rec("i2", 100_400)], rules)
    assert outcome_of(two, "external", "e1") == (Outcome.UNMATCHED, Reason.AMBIGUOUS_CANDIDATES)
    assert [b.code for b in two.breaks()] == [Reason.AMBIGUOUS_CANDIDATES] + [Reason.UNMATCHED_INTERNAL] * 2
    exact = match([rec("e1", 100_300)], [rec("i1", 100_300), rec("i2", 100_400)], rules)
    assert {(g.external, g.internal) for g in exact.groups} == {(("e1",), ("i1",))}
