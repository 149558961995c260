"""Shrinking a failing stress case to a minimal one (the VOPR / Hypothesis habit: a failure is
reported as the smallest schedule that still fails, with the seed that reproduces it).

:func:`shrink` takes a scenario that fails (``fails(scenario)`` is True) and greedily tries
smaller candidates, keeping the first that still fails and starting over from it, until none of
the candidates fails or ``budget`` tries are spent. Candidates, smallest change last:

1. **drop one fault** (from the last to the first);
2. **make one fault smaller**: ``count``, ``blocks``, ``depth`` and ``duration_s`` to their
   floor (1), to half, or by one; ``probability`` halved (while ≥ 0.02); an explicit
   ``batches`` list halved; a ``mark_shock`` percent halved;
3. **a smaller seed**: 0, 1, … (at most :data:`SEEDS_TRIED`, below the failing one).

Each candidate is a valid scenario (built through :func:`parse_scenario`); a candidate that does
not validate is skipped without spending a try. The result is deterministic for a deterministic
``fails``. Nothing here runs a replay: the node's predicate does (``node/stress.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from clearlane.core.risk.scenario import Scenario, ScenarioError, parse_scenario

SEEDS_TRIED = 8


@dataclass(frozen=True)
class Shrunk:
    """The smallest failing scenario found, the tries spent and each step taken (in words)."""

    scenario: Scenario
    tries: int
    steps: list[str] = field(default_factory=list)
    exhausted: bool = False  # the budget ran out before a fixed point


def shrink(scenario: Scenario, fails: Callable[[Scenario], bool], *, budget: int = 24) -> Shrunk:
    """Greedy shrinking of a failing ``scenario`` (module docstring)."""
    current, tries = scenario, 0
    steps: list[str] = []
    progressed = True
    while progressed:
        progressed = False
        for what, candidate in candidates(current):
            if tries >= budget:
                return Shrunk(current, tries, steps, exhausted=True)
            tries += 1
            if fails(candidate):
                current, progressed = candidate, True
                steps.append(what)
                break
    return Shrunk(current, tries, steps)


def candidates(scenario: Scenario) -> Iterator[tuple[str, Scenario]]:
    """Smaller variants of ``scenario``, each with what changed (module docstring, order)."""
    raw = scenario.model_dump(mode="json", exclude_none=True)
    faults: list[dict[str, Any]] = raw["faults"]
    for i in reversed(range(len(faults))):
        yield from _valid(
            raw, f"dropped fault {i} ({faults[i]['type']})", faults=faults[:i] + faults[i + 1 :]
        )
    for i, fault in enumerate(faults):
        for key, smaller in _smaller(fault):
            changed = [*faults[:i], {**fault, key: smaller}, *faults[i + 1 :]]
            yield from _valid(
                raw, f"fault {i} ({fault['type']}): {key} {fault[key]} → {smaller}", faults=changed
            )
    for seed in range(min(scenario.seed, SEEDS_TRIED)):
        yield from _valid(raw, f"seed {scenario.seed} → {seed}", seed=seed)


def _smaller(fault: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for key, floor in (("count", 1), ("blocks", 1), ("depth", 1), ("duration_s", 1)):
        value = fault.get(key)
        if isinstance(value, int) and value > floor:
            for smaller in sorted({floor, max(floor, value // 2), value - 1}):
                yield key, smaller
    probability = fault.get("probability")
    if isinstance(probability, float) and probability >= 0.02:
        yield "probability", probability / 2
    batches = fault.get("batches")
    if isinstance(batches, list) and len(batches) > 1:
        yield "batches", batches[: len(batches) // 2]
    percent = fault.get("percent")
    if isinstance(percent, str) and abs(Decimal(percent)) >= Decimal("0.02"):
        yield "percent", str((Decimal(percent) / 2).quantize(Decimal("0.0001")).normalize())


def _valid(raw: dict[str, Any], what: str, **changes: Any) -> Iterator[tuple[str, Scenario]]:
    try:
        yield what, parse_scenario({**raw, **changes}, source="<shrink>")
    except ScenarioError:
        return


def scenario_toml(scenario: Scenario) -> str:
    """A scenario as TOML text that :func:`load_scenario` reads back to the same scenario (how a
    shrunk case is printed, ready to save and re-run); keys left at their defaults are omitted."""
    raw = scenario.model_dump(mode="json", exclude_defaults=True)
    lines = [f"{k} = {_value(v)}" for k, v in raw.items() if k not in ("margin", "resources", "faults")]
    for table in ("margin", "resources"):
        if raw.get(table):
            lines += ["", f"[{table}]", *(f"{k} = {_value(v)}" for k, v in raw[table].items())]
    for fault in raw.get("faults", []):
        lines += ["", "[[faults]]", *(f"{k} = {_value(v)}" for k, v in fault.items())]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else repr(value)
