"""Validated reference data.

The TOML file is validated with pydantic (unknown keys are refused, so a typo never silently
falls back to a default) and then compiled into :class:`ClearingConfig`: immutable, with dense
integer indices and NumPy lookup arrays for the vectorised engine. Indices follow file order;
the clearing house is the extra participant at index ``house_index`` (it receives fees, so net
positions including the house sum to zero).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from clearlane.core.config.presets import expand_preset
from clearlane.core.errors import InputError
from clearlane.core.escrow.records import EscrowPolicy
from clearlane.core.money import Asset, DecimalError, parse_decimal
from clearlane.core.proofs.canonical import canonical_json

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"


class ConfigError(InputError, ValueError, code="CONFIG_INVALID"):
    """A configuration file that cannot be used: names the file, the key and the reason."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key}: {reason}")
        self.file = file
        self.key = key
        self.reason = reason


class ParticipantKind(StrEnum):
    MARKET_MAKER = "market_maker"
    BROKER = "broker"
    RETAIL = "retail"
    CUSTODIAN = "custodian"
    MARKETPLACE = "marketplace"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _decimal_field(value: str, scale: int, *, allow_zero: bool = True) -> int:
    try:
        return parse_decimal(value, scale, allow_zero=allow_zero)
    except DecimalError as exc:
        raise ValueError(str(exc)) from exc


class AssetIn(_Strict):
    code: str = Field(pattern=r"^[A-Z][A-Z0-9]{1,11}$")
    scale: int = Field(ge=0, le=12)
    mark_usd: str = Field(description="USD per whole unit, a decimal string")
    # Set by the monitor's policy through a logged config change while the asset's marks
    # diverge (docs/MONITORING.md): its flows settle gross on L1 until it is cleared.
    l2_halted: bool = False

    @field_validator("mark_usd")
    @classmethod
    def _mark(cls, value: str) -> str:
        _decimal_field(value, 10, allow_zero=False)
        return value


class ParticipantIn(_Strict):
    id: str = Field(pattern=_ID_PATTERN)
    kind: ParticipantKind
    credit_limit_usd: str = "0"
    fee_tier: str = "standard"
    legacy_opt_out: bool = False
    name: str = ""
    # A canary (node/monitor): its trades are real but never count in client figures or savings.
    synthetic: bool = False

    @field_validator("credit_limit_usd")
    @classmethod
    def _credit(cls, value: str) -> str:
        _decimal_field(value, 2)
        return value


class FeeTierIn(_Strict):
    bps: str = Field(description="fee in basis points of the quote amount, up to 2 decimals")

    @field_validator("bps")
    @classmethod
    def _bps(cls, value: str) -> str:
        if _decimal_field(value, 2) > 100_00:
            raise ValueError("a fee above 100 bps is refused as a likely typo")
        return value


class PoolIn(_Strict):
    id: str = Field(pattern=_ID_PATTERN)
    window_ms: int = Field(gt=0, le=3_600_000)
    size_max: int = Field(gt=0, le=10_000_000, description="trades per batch")
    confirmations: int = Field(ge=1, le=1000)
    challenge_window_ms: int = Field(default=0, ge=0)
    fee_discount_pct: str = "0"
    anchor_deadline_ms: int = Field(default=120_000, gt=0)
    anchor_resubmit_ms: int = Field(default=15_000, gt=0)
    on_anchor_deadline: Literal["unwind_to_l1", "keep_retrying"] = "unwind_to_l1"
    description: str = ""

    @field_validator("fee_discount_pct")
    @classmethod
    def _discount(cls, value: str) -> str:
        if _decimal_field(value, 2) > 100_00:
            raise ValueError("a discount cannot exceed 100%")
        return value


class WhenIn(_Strict):
    opt_out: bool | None = None
    notional_usd_above: str | None = None
    notional_usd_at_most: str | None = None
    any_kind: list[ParticipantKind] | None = None
    all_kinds: list[ParticipantKind] | None = None
    lane_hint: str | None = None
    flow: Literal["trade", "payment"] | None = None

    @field_validator("notional_usd_above", "notional_usd_at_most")
    @classmethod
    def _usd(cls, value: str | None) -> str | None:
        if value is not None:
            _decimal_field(value, 2)
        return value


class RuleIn(_Strict):
    name: str
    when: WhenIn = WhenIn()
    lane: Literal["L1", "L2"] = "L2"
    pool: str | None = None

    @model_validator(mode="after")
    def _target(self) -> RuleIn:
        if self.lane == "L2" and self.pool is None:
            raise ValueError("an L2 rule needs a pool")
        if self.lane == "L1" and self.pool is not None:
            raise ValueError("an L1 rule cannot name a pool")
        return self


class FaultsIn(_Strict):
    """Passed through to the simulated chain's fault schedule (validated there)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class ChainIn(_Strict):
    preset: str | None = None  # core/config/presets.py: real timing by name; explicit keys win
    block_time_ms: int = Field(default=2000, gt=0)
    txs_per_block_max: int = Field(default=50_000, gt=0)
    fee_per_tx_minor: int = Field(default=1000, ge=0)
    fee_asset: str = "USD"
    seed: int = 0
    faults: dict[str, Any] = Field(default_factory=dict)


class ClearingIn(_Strict):
    house: str = Field(default="HOUSE", pattern=_ID_PATTERN)
    reporting_asset: str = "USD"
    l1_confirmations: int = Field(default=3, ge=1)
    l1_resubmit_ms: int = Field(default=30_000, gt=0)
    liquidity_breach: Literal["route_l1", "reject"] = "route_l1"
    trade_chunk_rows_max: int = Field(default=65_536, gt=0)


class EscrowIn(_Strict):
    """``[escrow]``: the escrow policy (docs/ESCROW.md). Amounts per asset code, decimal text."""

    approval_over: dict[str, str] = Field(default_factory=dict)
    reserve_overdraft: dict[str, str] = Field(default_factory=dict)
    delegate_accept: bool = False


_EPOCH_2000 = datetime(2000, 1, 1, tzinfo=UTC)
_EPOCH_2100 = datetime(2100, 1, 1, tzinfo=UTC)


class IntakeIn(_Strict):
    """Bounds the edge puts on ``executed_at`` (docs/CONFIG.md, ``[intake]``)."""

    executed_at_min: AwareDatetime = _EPOCH_2000
    executed_at_max: AwareDatetime = _EPOCH_2100
    # The service: at most this far ahead of the engine clock when the trade is received.
    executed_at_future_ms: int = Field(default=300_000, ge=0)
    # Files and bus messages: within this of the input's first in-range trade.
    executed_at_file_span_ms: int = Field(default=7 * 86_400_000, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> IntakeIn:
        if self.executed_at_min >= self.executed_at_max:
            raise ValueError("executed_at_min must be before executed_at_max")
        return self


class LiquidityMarginIn(_Strict):
    """``[liquidity_margin]``: the pre-L2 check also charges the finality-window margin of the
    exposure held from cleared to final (docs/STRESS.md; off unless ``enabled``)."""

    enabled: bool = False
    confidence: float = Field(default=0.99, gt=0.5, lt=1.0)
    default_daily_vol: float = Field(default=0.04, ge=0.0, le=1.0)
    daily_vol: dict[str, float] = Field(default_factory=dict)  # per asset code, overrides the default
    liquidation_days: float = Field(default=0.0, ge=0.0, le=10.0)


class ConfigIn(_Strict):
    clearing: ClearingIn = ClearingIn()
    liquidity_margin: LiquidityMarginIn = LiquidityMarginIn()
    escrow: EscrowIn = EscrowIn()
    intake: IntakeIn = IntakeIn()
    chain: ChainIn = ChainIn()
    assets: list[AssetIn] = Field(min_length=1)
    fee_tiers: dict[str, FeeTierIn] = Field(default_factory=lambda: {"standard": FeeTierIn(bps="0")})
    participants: list[ParticipantIn] = Field(min_length=2)
    pools: list[PoolIn] = Field(min_length=1)
    routing: list[RuleIn] = Field(min_length=1)


# ---------------------------------------------------------------------------------------
# Compiled, immutable configuration
# ---------------------------------------------------------------------------------------

MARK_SCALE = 10  # marks are parsed with 10 decimals, then kept as float64 risk estimates


@dataclass(frozen=True)
class Participant:
    index: int
    id: str
    kind: ParticipantKind
    credit_limit_cents: int
    fee_tier: str
    legacy_opt_out: bool
    name: str
    synthetic: bool = False


@dataclass(frozen=True)
class LiquidityMargin:
    """The compiled ``[liquidity_margin]``: daily volatility per asset (engine order; the
    reporting asset 0), each pool's horizon in days — its finality window (one block to include
    the anchor, the confirmations, the challenge window) plus the liquidation days — and the
    confidence of the SPAN-like scan (core/risk/margin.py)."""

    confidence: float
    vols: tuple[float, ...]
    horizons_days: tuple[float, ...]


@dataclass(frozen=True)
class Pool:
    index: int
    id: str
    window_ms: int
    size_max: int
    confirmations: int
    challenge_window_ms: int
    fee_discount_bp: int  # hundredths of a percent (5000 = 50 %)
    anchor_deadline_ms: int
    anchor_resubmit_ms: int
    on_anchor_deadline: str
    description: str

    @property
    def lane_name(self) -> str:
        return f"L2:{self.id}"


@dataclass(frozen=True)
class RoutingRule:
    """One ordered routing rule; target ``pool_index`` is -1 for Layer-1."""

    name: str
    pool_index: int
    opt_out: bool | None
    notional_usd_above: float | None
    notional_usd_at_most: float | None
    any_kind: frozenset[ParticipantKind] | None
    all_kinds: frozenset[ParticipantKind] | None
    lane_hint: str | None
    flow: str | None


@dataclass(frozen=True)
class IntakeLimits:
    """``[intake]`` compiled: the accepted ``executed_at`` range in epoch milliseconds."""

    executed_at_min_ms: int = int(_EPOCH_2000.timestamp() * 1000)
    executed_at_max_ms: int = int(_EPOCH_2100.timestamp() * 1000)
    executed_at_future_ms: int = 300_000
    executed_at_file_span_ms: int = 7 * 86_400_000


@dataclass(frozen=True)
class ClearingConfig:
    """Compiled reference data. ``digest`` identifies the exact configuration in the log."""

    source: str
    assets: tuple[Asset, ...]
    marks_usd: tuple[float, ...]
    participants: tuple[Participant, ...]
    pools: tuple[Pool, ...]
    routing: tuple[RoutingRule, ...]
    fee_tiers_cbps: dict[str, int]  # hundredths of a basis point
    house: str
    reporting_asset: str
    l1_confirmations: int
    l1_resubmit_ms: int
    liquidity_breach: str
    trade_chunk_rows_max: int
    chain: dict[str, Any]
    digest: str
    raw: dict[str, Any] = field(repr=False, compare=False)
    escrow: EscrowPolicy = field(default_factory=EscrowPolicy)
    intake: IntakeLimits = IntakeLimits()
    liquidity_margin: LiquidityMargin | None = None  # None: the check charges no margin
    l2_halted: frozenset[str] = frozenset()  # asset codes routed to L1 only (monitor policy)

    @property
    def synthetic_ids(self) -> frozenset[str]:
        """Participants flagged ``synthetic`` (canaries): left out of client figures."""
        return frozenset(p.id for p in self.participants if p.synthetic)

    # -- lookups ----------------------------------------------------------------------
    @property
    def house_index(self) -> int:
        return len(self.participants)

    @property
    def participant_count(self) -> int:
        """Participants including the clearing house."""
        return len(self.participants) + 1

    @property
    def participant_ids(self) -> list[str]:
        return [p.id for p in self.participants] + [self.house]

    def asset_index(self) -> dict[str, int]:
        return {a.code: i for i, a in enumerate(self.assets)}

    def participant_index(self) -> dict[str, int]:
        return {p.id: p.index for p in self.participants}

    def pool_index(self) -> dict[str, int]:
        return {p.id: p.index for p in self.pools}

    def asset_scales(self) -> npt.NDArray[np.int64]:
        return np.array([a.scale for a in self.assets], dtype=np.int64)

    def participant_kinds(self) -> list[ParticipantKind]:
        return [p.kind for p in self.participants]

    def opt_out_mask(self) -> npt.NDArray[np.bool_]:
        return np.array([p.legacy_opt_out for p in self.participants] + [False], dtype=np.bool_)

    def fee_cbps(self) -> npt.NDArray[np.int64]:
        """Fee rate per participant (house pays none), hundredths of a basis point."""
        return np.array([self.fee_tiers_cbps[p.fee_tier] for p in self.participants] + [0], dtype=np.int64)

    def credit_limits_cents(self) -> npt.NDArray[np.int64]:
        return np.array([p.credit_limit_cents for p in self.participants] + [0], dtype=np.int64)

    def with_changes(self, changes: dict[str, Any]) -> ClearingConfig:
        """A new config with a config-change event applied (re-validated from raw)."""
        raw = json.loads(json.dumps(self.raw))
        for participant_id, patch in changes.get("participants", {}).items():
            for entry in raw["participants"]:
                if entry["id"] == participant_id:
                    entry.update(patch)
                    break
            else:
                raise ConfigError("config-change", f"participants.{participant_id}", "unknown participant")
        for asset_code, patch in changes.get("assets", {}).items():
            for entry in raw["assets"]:
                if entry["code"] == asset_code:
                    entry.update(patch)
                    break
            else:
                raise ConfigError("config-change", f"assets.{asset_code}", "unknown asset")
        return parse_config(raw, source=f"{self.source}+change")


def _key_path(loc: tuple[int | str, ...], raw: dict[str, Any]) -> str:
    """Render a pydantic error location as a TOML key path, naming list items by their id."""
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                ident = node[item].get("id") or node[item].get("code") or node[item].get("name")
                if ident:
                    label = f"[{item}] ({ident})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(item))
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
    return "".join(parts)


def load_config(path: str | Path) -> ClearingConfig:
    """Read and validate a TOML configuration file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(str(path), "-", "file not found") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "-", f"not UTF-8 text: {exc}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "-", f"not valid TOML: {exc}") from exc
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise ConfigError(str(path), "-", "not valid TOML: arrays or tables nested too deeply") from None
    return parse_config(raw, source=str(path))


def parse_config(raw: dict[str, Any], source: str = "<config>") -> ClearingConfig:
    """Validate a parsed TOML document and compile it."""
    expanded, preset_error = expand_preset(raw)
    if preset_error is not None:
        raise ConfigError(source, "chain.preset", preset_error)
    try:
        parsed = ConfigIn.model_validate(expanded)
    except RecursionError:
        raise ConfigError(source, "-", "values nested too deeply") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        key = _key_path(tuple(first["loc"]), expanded) or "-"
        raise ConfigError(source, key, first["msg"]) from None
    return _compile(parsed, raw, source)


def _compile(cfg: ConfigIn, raw: dict[str, Any], source: str) -> ClearingConfig:
    _check_references(cfg, source)
    rules = _routing_rules(cfg, source)
    participants = _participants(cfg)
    pools = _pools(cfg)
    canonical = canonical_json(raw, ascii_only=True, default=str)
    return ClearingConfig(
        source=source,
        assets=tuple(Asset(a.code, a.scale) for a in cfg.assets),
        marks_usd=tuple(parse_decimal(a.mark_usd, MARK_SCALE) / 10**MARK_SCALE for a in cfg.assets),
        participants=participants,
        pools=pools,
        routing=tuple(rules),
        fee_tiers_cbps={name: parse_decimal(t.bps, 2, allow_zero=True) for name, t in cfg.fee_tiers.items()},
        house=cfg.clearing.house,
        reporting_asset=cfg.clearing.reporting_asset,
        l1_confirmations=cfg.clearing.l1_confirmations,
        l1_resubmit_ms=cfg.clearing.l1_resubmit_ms,
        liquidity_breach=cfg.clearing.liquidity_breach,
        trade_chunk_rows_max=cfg.clearing.trade_chunk_rows_max,
        chain=cfg.chain.model_dump(),
        digest=hashlib.sha256(canonical).hexdigest(),
        raw=raw,
        escrow=_escrow_policy(cfg, source),
        liquidity_margin=_liquidity_margin(cfg, pools, source),
        l2_halted=frozenset(a.code for a in cfg.assets if a.l2_halted),
        intake=IntakeLimits(
            executed_at_min_ms=_epoch_ms(cfg.intake.executed_at_min),
            executed_at_max_ms=_epoch_ms(cfg.intake.executed_at_max),
            executed_at_future_ms=cfg.intake.executed_at_future_ms,
            executed_at_file_span_ms=cfg.intake.executed_at_file_span_ms,
        ),
    )


def _liquidity_margin(cfg: ConfigIn, pools: tuple[Pool, ...], source: str) -> LiquidityMargin | None:
    m = cfg.liquidity_margin
    if not m.enabled:
        return None
    codes = [a.code for a in cfg.assets]
    for code in m.daily_vol:
        if code not in codes:
            raise ConfigError(source, "liquidity_margin.daily_vol", f"unknown asset {code!r}")
    vols = tuple(
        0.0 if code == cfg.clearing.reporting_asset else float(m.daily_vol.get(code, m.default_daily_vol))
        for code in codes
    )
    block = cfg.chain.block_time_ms
    horizons = tuple(
        (block * (1 + p.confirmations) + p.challenge_window_ms) / 86_400_000 + m.liquidation_days
        for p in pools
    )
    return LiquidityMargin(m.confidence, vols, horizons)


def _escrow_policy(cfg: ConfigIn, source: str) -> EscrowPolicy:
    scales = {a.code: a.scale for a in cfg.assets}

    def minor(section: str, amounts: dict[str, str]) -> dict[str, int]:
        out = {}
        for code, text in amounts.items():
            if code not in scales:
                raise ConfigError(source, f"escrow.{section}.{code}", f"{code!r} is not a configured asset")
            try:
                out[code] = parse_decimal(text, scales[code], allow_zero=True)
            except DecimalError as exc:
                raise ConfigError(source, f"escrow.{section}.{code}", str(exc)) from None
        return out

    return EscrowPolicy(
        approval_over_minor=minor("approval_over", cfg.escrow.approval_over),
        reserve_overdraft_minor=minor("reserve_overdraft", cfg.escrow.reserve_overdraft),
        delegate_accept=cfg.escrow.delegate_accept,
    )


def _epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _check_references(cfg: ConfigIn, source: str) -> None:
    """Ids unique, and every asset, fee tier and house a section names is configured."""
    codes = [a.code for a in cfg.assets]
    for i, code in enumerate(codes):
        if codes.index(code) != i:
            raise ConfigError(source, f"assets[{i}].code", f"duplicate asset {code!r}")
    if cfg.clearing.reporting_asset not in codes:
        raise ConfigError(
            source, "clearing.reporting_asset", f"{cfg.clearing.reporting_asset!r} is not a configured asset"
        )
    if cfg.chain.fee_asset not in codes:
        raise ConfigError(source, "chain.fee_asset", f"{cfg.chain.fee_asset!r} is not a configured asset")
    ids = [p.id for p in cfg.participants]
    for i, pid in enumerate(ids):
        if ids.index(pid) != i:
            raise ConfigError(source, f"participants[{i}].id", f"duplicate participant {pid!r}")
        if pid == cfg.clearing.house:
            raise ConfigError(source, f"participants[{i}].id", "collides with the clearing house id")
        if cfg.participants[i].fee_tier not in cfg.fee_tiers:
            raise ConfigError(
                source, f"participants[{i}].fee_tier", f"unknown fee tier {cfg.participants[i].fee_tier!r}"
            )
    pool_ids = [p.id for p in cfg.pools]
    for i, pool_id in enumerate(pool_ids):
        if pool_ids.index(pool_id) != i:
            raise ConfigError(source, f"pools[{i}].id", f"duplicate pool {pool_id!r}")


def _routing_rules(cfg: ConfigIn, source: str) -> list[RoutingRule]:
    """The routing rules with their pools resolved; the last one must be a catch-all."""
    pool_ids = [p.id for p in cfg.pools]
    rules: list[RoutingRule] = []
    for i, rule in enumerate(cfg.routing):
        pool_index = -1
        if rule.pool is not None:
            if rule.pool not in pool_ids:
                raise ConfigError(source, f"routing[{i}].pool", f"unknown pool {rule.pool!r}")
            pool_index = pool_ids.index(rule.pool)
        hint = rule.when.lane_hint
        if hint is not None and hint != "L1" and hint != "L2" and hint not in pool_ids:
            raise ConfigError(
                source, f"routing[{i}].when.lane_hint", f"{hint!r} is neither L1, L2 nor a pool id"
            )
        rules.append(
            RoutingRule(
                name=rule.name,
                pool_index=pool_index,
                opt_out=rule.when.opt_out,
                notional_usd_above=_usd(rule.when.notional_usd_above),
                notional_usd_at_most=_usd(rule.when.notional_usd_at_most),
                any_kind=frozenset(rule.when.any_kind) if rule.when.any_kind else None,
                all_kinds=frozenset(rule.when.all_kinds) if rule.when.all_kinds else None,
                lane_hint=hint,
                flow=rule.when.flow,
            )
        )
    last = rules[-1]
    conditions = ("opt_out", "notional_usd_above", "notional_usd_at_most", "any_kind", "all_kinds")
    if not all(getattr(last, name) is None for name in (*conditions, "lane_hint", "flow")):
        raise ConfigError(
            source,
            f"routing[{len(rules) - 1}].when",
            "the last routing rule must be a catch-all (no conditions)",
        )
    return rules


def _participants(cfg: ConfigIn) -> tuple[Participant, ...]:
    return tuple(
        Participant(
            index=i,
            id=p.id,
            kind=p.kind,
            credit_limit_cents=parse_decimal(p.credit_limit_usd, 2, allow_zero=True),
            fee_tier=p.fee_tier,
            legacy_opt_out=p.legacy_opt_out,
            name=p.name or p.id,
            synthetic=p.synthetic,
        )
        for i, p in enumerate(cfg.participants)
    )


def _pools(cfg: ConfigIn) -> tuple[Pool, ...]:
    return tuple(
        Pool(
            index=i,
            id=p.id,
            window_ms=p.window_ms,
            size_max=p.size_max,
            confirmations=p.confirmations,
            challenge_window_ms=p.challenge_window_ms,
            fee_discount_bp=parse_decimal(p.fee_discount_pct, 2, allow_zero=True),
            anchor_deadline_ms=p.anchor_deadline_ms,
            anchor_resubmit_ms=p.anchor_resubmit_ms,
            on_anchor_deadline=p.on_anchor_deadline,
            description=p.description,
        )
        for i, p in enumerate(cfg.pools)
    )


def _usd(value: str | None) -> float | None:
    return None if value is None else parse_decimal(value, 2, allow_zero=True) / 100.0
