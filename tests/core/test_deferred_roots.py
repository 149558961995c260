"""A step's batch roots are awaited as late as the step allows (clearing.close_batches defers
them to StepBuilder.settle): whatever reads a root — the built step, a stage reading the events
so far, an anchor submitted again in the step that closed its batch — sees the real one."""

from __future__ import annotations

import pytest

from clearlane.core.config import ClearingConfig
from clearlane.core.engine import LogEntry, clearing
from clearlane.core.engine.clearing import UNHASHED
from clearlane.core.engine.flows import leaf_texts
from clearlane.core.engine.step import StepBuilder
from clearlane.core.model.inputs import ClockTick
from clearlane.core.proofs.merkle import hash_leaves, merkle_root
from clearlane.testing.harness import Harness
from tests.conftest import T0, chunk, trade


def _root_of(h: Harness, batch_id: str) -> bytes:
    """The batch's root recomputed one leaf at a time through hashlib (not the compiled pass)."""
    engine = h.engine
    flows = engine.pending[batch_id].flows
    texts = leaf_texts(flows, batch_id, engine.participant_ids, engine.asset_codes, engine.house)
    return merkle_root(hash_leaves(texts, backend="hashlib"), backend="hashlib")


def test_settle_runs_deferred_fills_in_order_and_once() -> None:
    out = StepBuilder(1, T0)
    done: list[int] = []
    out.defer(lambda: done.append(1))
    out.defer(lambda: (done.append(2), out.defer(lambda: done.append(3))))
    out.events_so_far()
    assert done == [1, 2, 3]
    out.settle()
    assert done == [1, 2, 3]


def test_a_closed_batch_carries_its_root_in_state_event_and_anchor(config: ClearingConfig) -> None:
    h = Harness(config, T0)
    h.apply("trades", chunk([trade(0), trade(1, "MM-BETA", "BRK-NORTH")]), T0)
    fx = h.apply("tick", {}, T0 + 600)  # the fast pool's 500 ms window closes it
    (cleared,) = fx.cleared()
    root = _root_of(h, cleared.batch_id)
    assert cleared.root == root and root != UNHASHED
    assert h.engine.pending[cleared.batch_id].root == root
    (anchor,) = [tx for tx in fx.submissions if tx.kind == "anchor"]
    assert (anchor.ref, anchor.payload_hash) == (cleared.batch_id, root)


def test_an_anchor_resubmitted_in_the_step_that_closed_its_batch_carries_its_root(
    config: ClearingConfig,
) -> None:
    # The first chain observation comes a minute after the trade: in that one step the fast
    # batch closes at its window's end (T0 + 500), and since observed chain time is already past
    # its resubmit time (15 s later) its anchor is submitted again before the step ends.
    h = Harness(config, T0)
    h.apply("trades", chunk([trade(0)]), T0)
    fx = h.advance(T0 + 60_000)
    (cleared,) = fx.cleared()
    kinds = [row[1] for row in (e for e in h.batch_events() if e[0] == cleared.batch_id)]
    assert kinds == ["cleared", "resubmitted"]
    root = _root_of(h, cleared.batch_id)
    anchors = [tx for tx in fx.submissions if tx.kind == "anchor" and tx.ref == cleared.batch_id]
    assert [tx.tx_id.rsplit(":", 1)[-1] for tx in anchors] == ["1", "2"]
    assert {tx.payload_hash for tx in anchors} == {root}
    assert cleared.root == root == h.engine.pending[cleared.batch_id].root


def test_a_failed_hash_fails_the_step_when_it_settles(
    config: ClearingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: object, **kwargs: object) -> object:
        def wait() -> list[bytes]:
            raise RuntimeError("libcrypto reported 1 failures while hashing batch leaves")

        return wait

    monkeypatch.setattr(clearing, "batch_roots_async", failing)
    h = Harness(config, T0)
    h.apply("trades", chunk([trade(0)]), T0)
    with pytest.raises(RuntimeError, match="libcrypto"):
        h.engine.apply(LogEntry(h.engine.applied_seq + 1, T0 + 600, "tick", ClockTick()))


def test_with_root_is_replace_with_the_root() -> None:
    """``BatchCleared.with_root`` (the fill's copy) is ``dataclasses.replace(event, root=...)``:
    every other field the same object, the root the new one, the original untouched."""
    import dataclasses

    import numpy as np
    import pyarrow as pa

    from clearlane.core.model.events import BatchCleared

    event = BatchCleared(
        "b-1", "fast", 3, 10, 20, 2, 4, 1.5, 0.5, UNHASHED,
        pa.array(["t1", "t2"]), np.array([10, 11]), pa.array(["P1"]), pa.array(["USD"]),
        np.array([5]), np.array([5, 0]),
    )  # fmt: skip
    root = bytes(range(32))
    copied, replaced = event.with_root(root), dataclasses.replace(event, root=root)
    assert copied is not event and event.root is UNHASHED and copied.root == root
    for field in dataclasses.fields(BatchCleared):
        if field.name != "root":
            assert getattr(copied, field.name) is getattr(event, field.name) is getattr(replaced, field.name)
