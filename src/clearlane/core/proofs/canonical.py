"""The one place that says how a JSON value becomes the bytes clearlane hashes, signs or stores.

- :func:`canonical_json`: THE canonical encoding — sorted keys, no whitespace, UTF-8 (or
  ``\\u``-escaped ASCII where the bytes must be ASCII), never ``NaN``/``Infinity`` (not JSON).
  Log payloads, hash-chain transitions, the config digest and chain snapshots use it.
- :func:`canonical_document`: proof and consistency files (sorted keys, indent 1, ASCII, a
  final newline). Defined in :mod:`clearlane.core.proofs.verify`, because the verifier must
  stand alone (it is shipped verbatim in proof bundles); re-exported here.
- :func:`spaced_json`: sorted keys with ``json``'s default separators, ASCII. Frozen, not for
  new uses: the engine's effects head (hence every recorded state root) and the dispute
  bundle's ``inputs.jsonl`` were written with it, and their bytes must never change.

Changing any byte these produce changes state roots, log hashes or proofs; the golden state-root
test and the proof test vectors hold them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from clearlane.core.proofs.verify import canonical_document

_COMPACT = (",", ":")


def canonical_json(
    value: Any, *, ascii_only: bool = False, default: Callable[[Any], Any] | None = None
) -> bytes:
    """Sorted keys, no whitespace, UTF-8; ``ascii_only`` escapes non-ASCII text (for bytes that
    must be ASCII); ``default`` turns values JSON has no type for into JSON (e.g. ``str`` for
    TOML datetimes). Raises ``ValueError`` for ``NaN`` and infinities."""
    return json.dumps(
        value, sort_keys=True, separators=_COMPACT, ensure_ascii=ascii_only, allow_nan=False, default=default
    ).encode()


def spaced_json(value: Any, *, default: Callable[[Any], Any] | None = None) -> bytes:
    """The frozen legacy encoding (see the module docstring): ``json.dumps(value,
    sort_keys=True)`` as ASCII bytes."""
    return json.dumps(value, sort_keys=True, default=default).encode()


__all__ = ["canonical_document", "canonical_json", "spaced_json"]
