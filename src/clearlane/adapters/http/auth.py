"""API keys and roles.

A key is ``cl_<key id>_<secret>``: the key id (public, 12 hex digits) finds the row, the secret
(32 random bytes, URL-safe base64) is never stored — only its SHA-256, compared in constant time
(:func:`hmac.compare_digest`). A high-entropy secret needs no slow hash: there is nothing to
brute-force. Keys are shown once, when created (``clearlane apikey create``).

Roles:

* ``participant`` — bound to one participant id: submits only trades and payments it is a party
  to and sees only its own trades, positions and liquidity (another participant's trade is a
  404, not a 403: existence is not disclosed);
* ``operator`` — everything, including collateral, webhooks and keys;
* ``auditor`` — reads everything, changes nothing.

Requests authenticate with ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from clearlane.adapters.sql import keys as sql_keys
from clearlane.adapters.sql.store import Store
from clearlane.core.errors import InputError

ROLES = ("participant", "operator", "auditor")
PARTICIPANT, OPERATOR, AUDITOR = ROLES
READ_ALL = frozenset((OPERATOR, AUDITOR))
CACHE_SECONDS = 5.0  # an upper bound; any change to the keys empties the cache at once


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: str
    participant: str | None = None
    label: str = ""

    @property
    def reads_all(self) -> bool:
        return self.role in READ_ALL

    def may_see(self, *parties: str | None) -> bool:
        """Operators and auditors see everything; a participant only what it is a party to."""
        return self.reads_all or (self.participant is not None and self.participant in parties)


class KeyError_(InputError, ValueError, code="API_KEY_REQUEST_INVALID"):
    """A key cannot be created as asked (bad role, missing or unknown participant)."""


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class KeyStore:
    """API keys in the ``api_keys`` table, with a verification cache that never outlives a
    change: every request first reads the store's key epoch (:class:`~clearlane.adapters.sql.keys.
    EpochReader`, ~10 µs) and a new epoch — a key created or revoked by this process or by
    ``clearlane apikey`` beside it — empties the cache, so a revoked key fails its next request."""

    def __init__(self, store: Store, participants: set[str] | None = None) -> None:
        self.store = store
        self.participants = participants
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()
        self._epoch_reader = sql_keys.EpochReader(store)  # opened on the first verification
        self._epoch: str | None = None

    def create(self, role: str, participant: str | None = None, label: str = "") -> tuple[Principal, str]:
        if role not in ROLES:
            raise KeyError_(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if role == PARTICIPANT and not participant:
            raise KeyError_("a participant key needs --participant")
        if role != PARTICIPANT and participant:
            raise KeyError_(f"an {role} key is not bound to a participant")
        if participant and self.participants is not None and participant not in self.participants:
            raise KeyError_(f"participant {participant!r} is not configured")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        sql_keys.insert_key(
            self.store,
            key_id=key_id,
            secret_sha256=_digest(secret),
            role=role,
            participant=participant,
            label=label,
            created_ms=int(time.time() * 1000),
        )
        return Principal(key_id, role, participant, label), f"cl_{key_id}_{secret}"

    def revoke(self, key_id: str) -> bool:
        done = sql_keys.revoke_key(self.store, key_id, int(time.time() * 1000))
        with self._lock:
            self._cache.pop(key_id, None)
        return bool(done)

    def list(self) -> list[dict[str, Any]]:
        return sql_keys.list_keys(self.store)

    def count_active(self) -> int:
        return sql_keys.count_active_keys(self.store)

    def verify(self, token: str | None) -> Principal | None:
        if not token or not token.startswith("cl_"):
            return None
        key_id, sep, secret = token[3:].partition("_")
        if not sep or not key_id or not secret or len(key_id) > 32:
            return None
        row = self._row(key_id)
        if row is None or row["revoked_ms"] is not None:
            # Still hash, so a miss costs what a hit costs.
            hmac.compare_digest(_digest(secret), bytes(32))
            return None
        if not hmac.compare_digest(_digest(secret), bytes(row["secret_sha256"])):
            return None
        return Principal(key_id, str(row["role"]), row["participant"], str(row["label"] or ""))

    def close(self) -> None:
        with self._lock:
            self._epoch_reader.close()

    def _check_epoch(self) -> bool:
        """Empty the cache if the keys changed since it was filled (caller holds the lock);
        False if the epoch could not be read (then nothing is cached)."""
        try:
            epoch = self._epoch_reader.read()
        except Exception:  # the store is unreachable: trust nothing cached
            self._cache.clear()
            return False
        if epoch != self._epoch:
            self._cache.clear()
            self._epoch = epoch
        return True

    def _row(self, key_id: str) -> dict[str, Any] | None:
        now = time.monotonic()
        with self._lock:
            if not self._check_epoch():
                return sql_keys.key_row(self.store, key_id)
            epoch = self._epoch
            hit = self._cache.get(key_id)
            if hit is not None and now - hit[0] < CACHE_SECONDS:
                return hit[1]
        row = sql_keys.key_row(self.store, key_id)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            # Only under the epoch it was read in: a row read before a concurrent revocation
            # must not land in the cache that revocation's request just emptied.
            if epoch == self._epoch:
                self._cache[key_id] = (now, row)
        return row


def token_from(authorization: str | None, x_api_key: str | None) -> str | None:
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None
