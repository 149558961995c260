"""Silences and alert labels: Alertmanager's model, pure.

A silence is its own object, distinct from an acknowledgement: a set of label matchers and a
time window (``starts_at_ms`` .. ``ends_at_ms``) that mutes every alert whose labels match all of
them, whoever acked it or not. Matchers are Alertmanager's (``=``, ``!=``, ``=~``, ``!~``; a
regex is anchored at both ends; a missing label is the empty string). Like Alertmanager, a
silence must have at least one matcher that does not match the empty string, so it cannot mute
everything by accident. Expiring a silence early sets its end to now; nothing is deleted.

An alert's labels are its case's identity shown the Prometheus way: ``alertname`` (the rule),
``severity`` and the labels kept in the case's ``subject`` as ``name="value"`` pairs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from clearlane.core.cases.workflow import Case, CaseError
from clearlane.core.proofs.canonical import canonical_json

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
MAX_MATCHERS = 32


class SilenceState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def matches(self, labels: Mapping[str, str]) -> bool:
        have = labels.get(self.name, "")
        hit = re.fullmatch(self.value, have) is not None if self.is_regex else have == self.value
        return hit if self.is_equal else not hit

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}


@dataclass(frozen=True, slots=True)
class Silence:
    silence_id: str
    matchers: tuple[Matcher, ...]
    starts_at_ms: int
    ends_at_ms: int
    created_by: str
    comment: str
    created_at_ms: int
    updated_at_ms: int

    def state(self, now_ms: int) -> SilenceState:
        if now_ms >= self.ends_at_ms:
            return SilenceState.EXPIRED
        return SilenceState.PENDING if now_ms < self.starts_at_ms else SilenceState.ACTIVE

    def mutes(self, labels: Mapping[str, str], now_ms: int) -> bool:
        return self.state(now_ms) is SilenceState.ACTIVE and all(m.matches(labels) for m in self.matchers)


def matcher(obj: Mapping[str, object]) -> Matcher:
    """A matcher from its Alertmanager JSON (``name``, ``value``, ``isRegex``, ``isEqual``)."""
    name, value = obj.get("name"), obj.get("value")
    if not isinstance(name, str) or not LABEL_NAME.match(name):
        raise CaseError("SILENCE_INVALID", f"matchers.name: {name!r} is not a label name")
    if not isinstance(value, str):
        raise CaseError("SILENCE_INVALID", f"matchers.value: a string is required for {name}")
    is_regex, is_equal = obj.get("isRegex", False), obj.get("isEqual", True)
    if not isinstance(is_regex, bool) or not isinstance(is_equal, bool):
        raise CaseError("SILENCE_INVALID", "matchers.isRegex/isEqual: booleans")
    if is_regex:
        try:
            re.compile(value)
        except re.error as exc:
            raise CaseError("SILENCE_INVALID", f"matchers.value: bad regex for {name}: {exc}") from None
    return Matcher(name, value, is_regex, is_equal)


def new_silence(
    matchers: Iterable[Matcher],
    *,
    starts_at_ms: int,
    ends_at_ms: int,
    created_by: str,
    comment: str,
    at_ms: int,
) -> Silence:
    """Validate and build a silence; its id is a digest of what defines it."""
    found = tuple(matchers)
    if not found or len(found) > MAX_MATCHERS:
        raise CaseError("SILENCE_INVALID", f"matchers: 1 to {MAX_MATCHERS} are required")
    if all(m.matches({}) for m in found):
        raise CaseError("SILENCE_INVALID", "matchers: at least one must not match the empty string")
    if ends_at_ms <= starts_at_ms or ends_at_ms <= at_ms:
        raise CaseError("SILENCE_INVALID", "endsAt: after startsAt and after now")
    if not created_by.strip() or not comment.strip():
        raise CaseError("SILENCE_INVALID", "createdBy/comment: both are required")
    body = canonical_json(
        {
            "matchers": [m.to_dict() for m in found], "starts": starts_at_ms, "ends": ends_at_ms,
            "by": created_by, "comment": comment, "at": at_ms,
        }
    )  # fmt: skip
    sid = "sil-" + hashlib.sha256(body).hexdigest()[:20]
    return Silence(sid, found, starts_at_ms, ends_at_ms, created_by, comment, at_ms, at_ms)


def expire_silence(silence: Silence, at_ms: int) -> Silence:
    """End a silence now (Alertmanager's DELETE); an expired silence stays as it was."""
    if silence.state(at_ms) is SilenceState.EXPIRED:
        raise CaseError("SILENCE_EXPIRED", f"silence {silence.silence_id}: already expired")
    return replace(silence, ends_at_ms=max(at_ms, silence.starts_at_ms), updated_at_ms=at_ms)


def silencing(silences: Iterable[Silence], labels: Mapping[str, str], now_ms: int) -> tuple[str, ...]:
    """The ids of the silences muting an alert with these labels now."""
    return tuple(sorted(s.silence_id for s in silences if s.mutes(labels, now_ms)))


# ---------------------------------------------------------------------- labels
def format_labels(labels: Mapping[str, str]) -> str:
    """``name="value",...`` sorted by name: an alert case's ``subject`` (and its fingerprint)."""
    for name in labels:
        if not LABEL_NAME.match(name):
            raise CaseError("ALERT_LABEL_INVALID", f"labels: {name!r} is not a label name")
    return ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_labels(text: str) -> dict[str, str]:
    return {m.group(1): _unescape(m.group(2)) for m in _PAIR.finditer(text)}


def alert_labels(case: Case) -> dict[str, str]:
    """An alert's labels: its rule as ``alertname``, its severity, and its subject's labels."""
    labels = parse_labels(case.subject)
    labels.setdefault("alertname", case.rule)
    labels.setdefault("severity", case.severity.value)
    return labels


def silence_row(s: Silence) -> dict[str, object]:
    return {
        "silence_id": s.silence_id, "matchers": canonical_json([m.to_dict() for m in s.matchers]).decode(),
        "starts_at_ms": s.starts_at_ms, "ends_at_ms": s.ends_at_ms, "created_by": s.created_by,
        "comment": s.comment, "created_at_ms": s.created_at_ms, "updated_at_ms": s.updated_at_ms,
    }  # fmt: skip


def silence_from_row(row: Mapping[str, Any]) -> Silence:
    return Silence(
        row["silence_id"], tuple(matcher(m) for m in json.loads(row["matchers"])), int(row["starts_at_ms"]),
        int(row["ends_at_ms"]), row["created_by"], row["comment"], int(row["created_at_ms"]),
        int(row["updated_at_ms"]),
    )  # fmt: skip
