"""Lane hints matched as codes (routing.LaneHints, issue 18): a dictionary column's codes and a
plain list's pick exactly the rows whose hint string equals the rule's, and route every flow
alike."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.config.model import ClearingConfig, load_config
from clearlane.core.engine.routing import LaneHints, kind_codes, route
from clearlane.core.engine.trades import _lane_hints

from ..conftest import EXAMPLE_CONFIG

_CONFIG: ClearingConfig = load_config(EXAMPLE_CONFIG)
_HINTS = st.sampled_from([None, "L1", "fast", "bulk", "retail", "", "L2"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_HINTS, st.integers(0, 10**7), st.integers(0, 50)), min_size=1, max_size=30))
def test_routing_on_hint_codes_equals_routing_on_hint_strings(
    rows: list[tuple[str | None, int, int]],
) -> None:
    cfg = _CONFIG
    n = len(rows)
    participants = cfg.participant_count
    buyer = np.array([r[2] % participants for r in rows], dtype=np.int32)
    seller = np.array([(r[2] + 1) % participants for r in rows], dtype=np.int32)
    hints = [r[0] for r in rows]
    column = pa.table({"lane_hint": pa.array(hints, type=pa.string()).dictionary_encode()})
    common = {
        "buyer": buyer,
        "seller": seller,
        "kind": np.zeros(n, dtype=np.int8),
        "notional_usd": np.array([float(r[1]) for r in rows]),
        "kinds_by_participant": kind_codes(cfg),
        "opt_out": cfg.opt_out_mask(),
    }
    for hint in ("L1", "fast", "bulk", "retail", "", "L2", "none of them"):
        rows = np.array([value == hint for value in hints], dtype=np.bool_)
        assert np.array_equal(_lane_hints(column).equal(hint), rows)
        assert np.array_equal(LaneHints.of(hints).equal(hint), rows)
    coded = route(cfg, lane_hint=_lane_hints(column), **common)  # type: ignore[arg-type]
    plain = route(cfg, lane_hint=np.array(hints, dtype=object), **common)  # type: ignore[arg-type]
    assert np.array_equal(coded[0], plain[0])
    assert np.array_equal(coded[1], plain[1])
    also_plain = pa.table({"lane_hint": pa.array(hints, type=pa.string())})  # not dictionary-encoded
    assert np.array_equal(route(cfg, lane_hint=_lane_hints(also_plain), **common)[0], plain[0])  # type: ignore[arg-type]
