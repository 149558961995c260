"""The one spelling of every id: the recorded spellings, and parse(format(x)) == x."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearlane.core.model import ids

seqs = st.integers(min_value=0, max_value=10**12)
attempts = st.integers(min_value=1, max_value=10**6)
names = st.text(min_size=1, max_size=24)


def test_recorded_spellings() -> None:
    # These spellings are hashed into the state root and stored: they must never change.
    assert ids.batch_id("P1", 42) == "P1-00000042"
    assert ids.batch_id("fx-major", 123_456_789) == "fx-major-123456789"
    assert ids.l1_group_id(1) == "l1-00000001"
    assert ids.l1_tx_id("T-1", 2) == "l1:T-1:2"
    assert ids.anchor_tx_id("P1-00000001", 1) == "anchor:P1-00000001:1"
    assert ids.unwound_origin("P1-00000003") == "unwound:P1-00000003"
    assert ids.l2_hold_entry_id("P1-00000003") == "l2_hold:P1-00000003"
    assert ids.l2_release_entry_id("P1-00000003") == "l2_release:P1-00000003"
    assert ids.l1_settle_entry_id("l1-00000002", 5, 3, 1000) == "l1_settle:l1-00000002:5:3:1000"
    assert ids.deposit_entry_id("D1") == "deposit:D1"
    assert ids.withdrawal_entry_id("W1") == "withdrawal:W1"
    assert ids.event_key("withdrawal", "W1") == "withdrawal:W1"
    assert ids.payment_key("PAY-1") == "p:PAY-1"
    assert ids.file_source("abc") == "file:abc"
    assert ids.deposit_source("D1") == "deposit:D1"
    assert ids.nats_source("CLEARLANE", 7, "P1") == "nats:CLEARLANE:7:P1"
    assert ids.event_id(12, "batch.cleared", "P1-00000001") == "12:batch.cleared:P1-00000001"


@given(pool=names.filter(lambda s: s.strip() == s), seq=seqs)
def test_batch_id_round_trips(pool: str, seq: int) -> None:
    text = ids.batch_id(pool, seq)
    assert ids.parse_batch_id(text) == (pool, seq)
    assert ids.split_batch_id(text) == (pool, seq)


@given(seq=seqs)
def test_l1_group_id_round_trips(seq: int) -> None:
    assert ids.parse_l1_group_id(ids.l1_group_id(seq)) == seq


@given(flow_id=names, attempt=attempts)
def test_tx_ids_round_trip(flow_id: str, attempt: int) -> None:
    assert ids.parse_l1_tx_id(ids.l1_tx_id(flow_id, attempt)) == (flow_id, attempt)
    assert ids.parse_anchor_tx_id(ids.anchor_tx_id(flow_id, attempt)) == (flow_id, attempt)
    assert ids.parse_unwound_origin(ids.unwound_origin(flow_id)) == flow_id


@given(seq=seqs, event_type=st.sampled_from(["batch.cleared", "trade.final", "stats"]), subject=names)
def test_event_id_round_trips(seq: int, event_type: str, subject: str) -> None:
    assert ids.parse_event_id(ids.event_id(seq, event_type, subject)) == (str(seq), event_type, subject)


@pytest.mark.parametrize("text", ["", "P1", "-00000001", "P1-", "P1-x1", "P1-²", "P1-+1"])
def test_not_a_batch_id(text: str) -> None:
    assert ids.parse_batch_id(text) is None
    with pytest.raises(ValueError):
        ids.split_batch_id(text)


def test_other_parsers_refuse_foreign_text() -> None:
    assert ids.parse_l1_group_id("P1-00000001") is None
    assert ids.parse_l1_tx_id("anchor:P1-00000001:1") is None
    assert ids.parse_anchor_tx_id("l1:T-1:1") is None
    assert ids.parse_l1_tx_id("l1:T-1") is None
    assert ids.parse_unwound_origin("file:abc") is None
    assert ids.parse_event_id("overflow:3") is None


def test_the_input_id_grammar_is_one_unencoded_path_segment() -> None:
    from urllib.parse import quote

    for good in ("T1", "A-._~!$&'()*+,;=:@z", "x" * 64):
        assert ids.is_input_id(good)
        assert quote(good, safe="-._~!$&'()*+,;=:@") == good  # needs no percent-encoding
    for bad in ("", "x" * 65, "a/b", "a b", "a?b", "a#b", "a%41", "é", "a\x00", "a\nb", 7, None):
        assert not ids.is_input_id(bad), bad
