"""The stress scenario: what goes wrong during a replayed day, and the seeded streams every random
choice is drawn from.

A scenario is a TOML document (validated here like the clearing configuration)::

    id = "retail-unwind"
    seed = 7
    description = "..."
    day = "generated"            # or a path / label of the recorded day (informational)

    [[faults]]
    type = "batch_failure"       # anchor txs dropped -> the batch misses its deadline, unwinds
    pools = ["retail"]
    count = 3                    # batches chosen from the seed ...
    # batches = ["retail-000012"] # ... or named; or probability = 0.05 (every tx)

Fault types: ``batch_failure``, ``finality_delay``, ``anchor_reorg``, ``base_layer_outage``,
``participant_default``, ``mark_shock``. Times are ``at = "HH:MM[:SS]"`` (UTC, on the day of the
first replayed input); where a time or a target is omitted it is drawn from the scenario's seed.

Every random choice comes from :class:`Streams`: one ``numpy.random.Generator(PCG64)`` per
*name*, seeded from ``SeedSequence([seed, *sha256(name)])`` — so adding a fault of one kind never
changes the draws of another, and the same seed gives the same choices on every machine.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clearlane.core.errors import InputError
from clearlane.core.model import ids as model_ids

DAY_MS = 86_400_000
_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9]))?$")
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"


class ScenarioError(InputError, ValueError, code="SCENARIO_INVALID"):
    """A scenario that cannot be used: names the source, the key and the reason."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        super().__init__(f"{source}: {key}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason


def time_of_day_ms(text: str) -> int:
    """``"HH:MM[:SS]"`` as milliseconds after midnight (strict)."""
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"expected HH:MM or HH:MM:SS, got {text!r}")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return ((hours * 60 + minutes) * 60 + seconds) * 1000


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    at: str | None = None

    @field_validator("at")
    @classmethod
    def _at(cls, value: str | None) -> str | None:
        if value is not None:
            time_of_day_ms(value)
        return value


class BatchFailure(_Fault):
    """Chosen batches' anchor transactions are dropped (every attempt) so they miss their anchor
    deadline and unwind to gross L1; or, with ``probability``, every base-layer tx is dropped
    with that chance."""

    type: Literal["batch_failure"]
    pools: list[str] = Field(default_factory=list)
    batches: list[Annotated[str, Field(pattern=_ID)]] = Field(default_factory=list)
    count: int = Field(default=0, ge=0)
    probability: float = Field(default=0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _something(self) -> BatchFailure:
        if not self.batches and self.count == 0 and self.probability == 0.0:
            raise ValueError("batch_failure needs batches, count or probability")
        return self


class FinalityDelay(_Fault):
    """Base-layer inclusion delayed by ``blocks`` block slots with ``probability`` per tx."""

    type: Literal["finality_delay"]
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    blocks: int = Field(default=5, ge=1)


class AnchorReorg(_Fault):
    """``count`` reorgs of depth ``depth`` (k) at ``at`` (or at times drawn from the seed)."""

    type: Literal["anchor_reorg"]
    depth: int = Field(default=2, ge=1)
    count: int = Field(default=1, ge=1)


class BaseLayerOutage(_Fault):
    """No block produced for ``duration_s`` from ``at`` (drawn from the seed if omitted)."""

    type: Literal["base_layer_outage"]
    duration_s: int = Field(default=600, ge=1)


class ParticipantDefault(_Fault):
    """``participant`` (an id, ``cover1`` or ``cover2``) fails to pay at ``at``."""

    type: Literal["participant_default"]
    participant: Annotated[str, Field(pattern=_ID)] = "cover1"


class MarkShock(_Fault):
    """The mark of ``asset`` moves by ``percent`` (signed decimal text) at ``at``: during the
    finality window of what is cleared but not final then."""

    type: Literal["mark_shock"]
    asset: str
    percent: Annotated[str, Field(pattern=r"^-?(0|[1-9][0-9]*)(\.[0-9]{1,4})?$")]

    @field_validator("percent")
    @classmethod
    def _above_minus_100(cls, value: str) -> str:
        if float(value) <= -100.0:
            raise ValueError("a mark cannot fall by 100 % or more")
        return value


Fault = Annotated[
    BatchFailure | FinalityDelay | AnchorReorg | BaseLayerOutage | ParticipantDefault | MarkShock,
    Field(discriminator="type"),
]
FAULT_TYPES = (
    "batch_failure",
    "finality_delay",
    "anchor_reorg",
    "base_layer_outage",
    "participant_default",
    "mark_shock",
)


class MarginIn(BaseModel):
    """The margin model's parameters (see :mod:`clearlane.core.risk.margin`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    confidence: float = Field(default=0.99, gt=0.5, lt=1.0)
    history_days: int = Field(default=500, ge=20, le=5000)
    horizon: Literal["sqrt_time", "overlapping"] = "sqrt_time"
    liquidation_days: float = Field(default=0.0, ge=0.0, le=10.0)
    vol_scale: float = Field(default=1.0, gt=0.0, le=20.0)
    # Both replays' engines charge this margin in the pre-L2 liquidity check ([liquidity_margin]
    # with these vols and confidence): a flow whose held exposure's margin breaks the limit goes
    # to L1, and the report shows the margin charged and the flows diverted.
    in_liquidity_check: bool = False


class ResourcesIn(BaseModel):
    """Prefunded resources for the waterfall and Cover-1/Cover-2 (decimal USD text)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    default_fund_usd: Annotated[str, Field(pattern=r"^(0|[1-9][0-9]*)(\.[0-9]{1,2})?$")] = "0"
    house_usd: Annotated[str, Field(pattern=r"^(0|[1-9][0-9]*)(\.[0-9]{1,2})?$")] = "0"
    buffer_pct: float = Field(default=100.0, gt=0.0, le=1000.0)


class Scenario(BaseModel):
    """See the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Annotated[str, Field(pattern=_ID)]
    seed: int = Field(ge=0, lt=1 << 63)
    description: str = ""
    day: str = "generated"
    liveness_bound_s: int = Field(default=1800, ge=1)
    faults: list[Fault] = Field(default_factory=list)
    margin: MarginIn = Field(default_factory=MarginIn)
    resources: ResourcesIn = Field(default_factory=ResourcesIn)

    def with_seed(self, seed: int) -> Scenario:
        return self.model_copy(update={"seed": seed})

    def of_type(self, kind: str) -> list[Any]:
        return [f for f in self.faults if f.type == kind]


def parse_scenario(raw: dict[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate a parsed TOML document; a bad one raises :class:`ScenarioError` naming the key."""
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "-"
        raise ScenarioError(source, key, first["msg"]) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario TOML file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ScenarioError(str(path), "-", "file not found") from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(str(path), "-", f"not valid TOML: {exc}") from exc
    return parse_scenario(raw, source=str(path))


class Streams:
    """Named, independent random streams derived from one seed (module docstring)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __call__(self, name: str) -> np.random.Generator:
        words = np.frombuffer(hashlib.sha256(name.encode()).digest(), dtype="<u4")
        sequence = np.random.SeedSequence([self.seed, *(int(w) for w in words)])
        return np.random.Generator(np.random.PCG64(sequence))


# ---------------------------------------------------------------------- compiling faults
@dataclass(frozen=True, slots=True)
class DayFrame:
    """What the replay knows of the day before the stressed run (from the baseline run)."""

    day_start_ms: int  # midnight UTC of the first input
    first_ms: int  # first input time
    last_ms: int  # last input time
    genesis_ms: int  # the base layer's genesis (first submission) in the baseline
    block_time_ms: int
    anchor_attempts: int  # how many anchor attempts fit before the deadline (+ margin)
    batches: dict[str, list[str]]  # pool -> batch ids cleared in the baseline, in order


@dataclass(frozen=True, slots=True)
class CompiledScenario:
    """A scenario made concrete for one day: the ``[chain.faults]`` table, the marks to inject
    and the defaults to evaluate, each at a time in ms."""

    chain_faults: dict[str, Any]
    marks: list[tuple[int, str, str]]  # (at_ms, asset, percent)
    defaults: list[tuple[int, str]]  # (at_ms, participant | cover1 | cover2)
    expected: dict[str, int]  # fault type -> how many instances the schedule holds


def _at(fault: Any, frame: DayFrame, rng: np.random.Generator) -> int:
    if fault.at is not None:
        return frame.day_start_ms + time_of_day_ms(fault.at)
    span = max(1, frame.last_ms - frame.first_ms)
    return frame.first_ms + int(rng.integers(0, span))


def compile_scenario(scenario: Scenario, frame: DayFrame) -> CompiledScenario:
    """Turn the scenario's faults into concrete, seeded choices for this day."""
    streams = Streams(scenario.seed)
    faults: dict[str, Any] = {"seed": scenario.seed % (1 << 31)}
    drop_ids: list[str] = []
    reorgs: dict[int, int] = {}
    outages: list[list[int]] = []
    marks: list[tuple[int, str, str]] = []
    defaults: list[tuple[int, str]] = []
    expected = dict.fromkeys(FAULT_TYPES, 0)
    for index, fault in enumerate(scenario.faults):
        rng = streams(f"{fault.type}/{index}")
        match fault:
            case BatchFailure():
                chosen = _failed_batches(fault, frame, rng)
                for batch in chosen:
                    drop_ids += [model_ids.anchor_tx_id(batch, a) for a in range(frame.anchor_attempts)]
                if fault.probability > 0:
                    faults["drop_probability"] = max(faults.get("drop_probability", 0.0), fault.probability)
                expected["batch_failure"] += len(chosen) + (1 if fault.probability > 0 else 0)
            case FinalityDelay():
                faults["delay_probability"] = max(faults.get("delay_probability", 0.0), fault.probability)
                faults["delay_blocks"] = max(int(faults.get("delay_blocks", 0)), fault.blocks)
                expected["finality_delay"] += 1
            case AnchorReorg():
                for _ in range(fault.count):
                    height = max(fault.depth + 1, _height(_at(fault, frame, rng), frame))
                    while height in reorgs:
                        height += 1
                    reorgs[height] = fault.depth
                expected["anchor_reorg"] += fault.count
            case BaseLayerOutage():
                start = _at(fault, frame, rng)
                outages.append([start, start + fault.duration_s * 1000])
                expected["base_layer_outage"] += 1
            case ParticipantDefault():
                defaults.append((_at(fault, frame, rng), fault.participant))
                expected["participant_default"] += 1
            case MarkShock():
                marks.append((_at(fault, frame, rng), fault.asset, fault.percent))
                expected["mark_shock"] += 1
    if drop_ids:
        faults["drop_tx_ids"] = sorted(set(drop_ids))
    if reorgs:
        faults["reorgs"] = [[h, d] for h, d in sorted(reorgs.items())]
    if outages:
        faults["outages"] = sorted(outages)
    return CompiledScenario(faults, sorted(marks), sorted(defaults), expected)


def _height(at_ms: int, frame: DayFrame) -> int:
    return max(1, (at_ms - frame.genesis_ms) // frame.block_time_ms)


def _failed_batches(fault: BatchFailure, frame: DayFrame, rng: np.random.Generator) -> list[str]:
    chosen = list(fault.batches)
    if fault.count:
        pools = fault.pools or sorted(frame.batches)
        candidates = [b for pool in pools for b in frame.batches.get(pool, [])]
        take = min(fault.count, len(candidates))
        if take:
            picks = rng.choice(len(candidates), size=take, replace=False)
            chosen += [candidates[int(i)] for i in np.sort(picks)]
    return sorted(set(chosen))
