"""config owns reference data: participants, assets, pools, fee tiers, the routing policy, the
liquidity policy and the simulated base layer's parameters, read from a TOML file and validated
before anything runs. A bad file is refused with :class:`ConfigError` naming the file, the key
and the reason. ``clearlane/core/config/example.toml`` is the documented example."""

from clearlane.core.config.model import (
    ClearingConfig,
    ConfigError,
    ParticipantKind,
    RoutingRule,
    load_config,
    parse_config,
)

__all__ = [
    "ClearingConfig",
    "ConfigError",
    "ParticipantKind",
    "RoutingRule",
    "load_config",
    "parse_config",
]
