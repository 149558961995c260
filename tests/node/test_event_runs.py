"""A file's run of small events is one step (an ``events`` log entry, core/model/inputs.EventRun):
each member is applied as it would be alone — same journal, collateral, rejects and id
conflicts — and a restarted run skips what was logged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clearlane.adapters.embedded import open_memory_node, open_node
from clearlane.core.model.inputs import EVENT_RUN_MAX, EVENTS_KIND
from clearlane.node.intake import iter_input
from clearlane.node.node import _event_steps
from clearlane.sim.generator import generate_day

AT_MS = 1_795_132_800_000


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return generate_day(trades=200, participants=6, assets=3, seed=3).write(
        tmp_path_factory.mktemp("runs") / "day"
    )


def _events(day: Any) -> list[dict[str, Any]]:
    deposits = [json.loads(line) for line in Path(day.deposits).read_text().splitlines()]
    first = deposits[0]
    return [
        *deposits,
        {**first, "deposit_id": "dep-unknown", "participant": "NOBODY"},  # rejected: unknown
        dict(first),  # the same id and content: a no-op
        {**first, "amount": "1.5"},  # the same id, other content: an id conflict (116)
        {"type": "price_mark", "mark_id": "m1", "asset": first["asset"], "mark_usd": "1.01"},
        {
            "type": "collateral_withdrawal",
            "withdrawal_id": "w1",
            "participant": first["participant"],
            "asset": first["asset"],
            "amount": "1",
        },
    ]


def _write(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_a_run_is_one_step_and_applies_each_member_as_alone(day: Any, tmp_path: Path) -> None:
    events = _events(day)
    path = _write(tmp_path / "events.jsonl", events)
    run = open_memory_node(day.config, keys=tmp_path / "keys")
    rejects: list[Any] = []
    run.clear_batches(iter_input(path, run.config), source="f", rejects=rejects, events_at_ms=AT_MS)
    kinds = [stored.entry.kind for stored in run.store.iter_log()]
    assert kinds.count(EVENTS_KIND) == 1 and len(kinds) == 1

    alone = open_memory_node(day.config, keys=tmp_path / "keys2")
    alone_rejects: list[Any] = []
    for n, event in enumerate(events):
        data = dict(event)
        kind = data.pop("type")
        step = alone.submit(kind, data, AT_MS, f"alone#{n}")
        alone_rejects.extend([*step.rejects(), *step.conflicts])
    assert run.engine.ledger.state_digest() == alone.engine.ledger.state_digest()
    assert (run.engine.collateral == alone.engine.collateral).all()
    assert (run.engine.marks_usd == alone.engine.marks_usd).all()
    assert sorted((int(r.code), r.input_id) for r in rejects) == sorted(
        (int(r.code), r.input_id) for r in alone_rejects
    )
    assert {int(r.code) for r in rejects} >= {116}
    run.close()
    alone.close()


def test_a_restarted_run_skips_what_was_logged(day: Any, tmp_path: Path) -> None:
    path = _write(tmp_path / "events.jsonl", _events(day))
    db = tmp_path / "n.db"
    node = open_node(db, day.config, keys=tmp_path / "keys")
    node.clear_batches(iter_input(path, node.config), source="f", events_at_ms=AT_MS)
    root, entries = node.engine.pre_root(), len(list(node.store.iter_log()))
    node.close()
    again = open_node(db, day.config, keys=tmp_path / "keys")
    again.clear_batches(iter_input(path, again.config), source="f", events_at_ms=AT_MS)
    assert len(list(again.store.iter_log())) == entries
    assert again.engine.pre_root() == root
    again.close()


class _Event:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def model_dump(self, mode: str) -> dict[str, Any]:
        return {**self.data, "v": 1}


def test_runs_are_cut_at_other_kinds_and_at_the_cap() -> None:
    dep = {"type": "collateral_deposit", "deposit_id": "d"}
    change = {"type": "config_change", "change_id": "c"}
    events = [_Event(dep), _Event(change), _Event(dep), _Event(dep), _Event(change)]
    steps = list(_event_steps(events))
    assert [(n, kind) for n, kind, _ in steps] == [
        (0, "collateral_deposit"),  # a lone member is its own entry, as before
        (1, "config_change"),
        (2, EVENTS_KIND),
        (4, "config_change"),
    ]
    assert steps[2][2] == {"events": [dep, dep]}
    many = list(_event_steps([_Event(dep)] * (EVENT_RUN_MAX + 3)))
    assert [(n, kind) for n, kind, _ in many] == [(0, EVENTS_KIND), (EVENT_RUN_MAX, EVENTS_KIND)]
    assert len(many[0][2]["events"]) == EVENT_RUN_MAX
