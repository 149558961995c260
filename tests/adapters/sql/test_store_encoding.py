"""Fast-path store encodings equal the canonical ones byte for byte."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.adapters.sql.store import submission_json
from clearlane.core.model.chain import TxSubmission, tx_submission_to_dict
from clearlane.core.proofs.codec import canonical_json

names = st.text(min_size=1).filter(lambda s: s.strip() != "")


@settings(max_examples=300, deadline=None)
@given(
    names,
    st.sampled_from(["anchor", "l1_settle"]),
    names,
    st.binary(min_size=32, max_size=32),
    st.integers(0, 2**62),
)
def test_outbox_payload_is_the_canonical_json(
    tx_id: str, kind: str, ref: str, digest: bytes, at_ms: int
) -> None:
    try:
        tx = TxSubmission(tx_id, kind, ref, digest, at_ms)  # type: ignore[arg-type]
    except ValueError:
        return  # not a submission the engine could make
    assert submission_json(tx) == canonical_json(tx_submission_to_dict(tx))
