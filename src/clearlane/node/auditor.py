"""The node's audit companion: extends the hash chain, the checkpoint tree and the key history
step by step, and signs checkpoints.

For every step the node hands it the log entry, the payload bytes as logged and the engine's
effects; :meth:`Auditor.step` returns an :class:`AuditStep` with everything the store commits in
the same transaction as the step: the input and transition hashes, the transition body, the new
audit records (checkpoint-tree leaves), a key record for a rotation, and — when the tree grew
and a signer is configured — a signed checkpoint. The same code runs on recovery and replay, so
a store's chain and records are recomputed from its log and compared.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from clearlane.core.errors import IntegrityError
from clearlane.core.model.events import Step
from clearlane.core.proofs.hashchain import (
    Frontier,
    RecordFold,
    genesis_hash,
    input_hash,
    submission_json,
    transition_body,
    transition_hash,
)
from clearlane.core.proofs.verify import (
    CHECKPOINT_FIELDS,
    CHECKPOINT_FORMAT,
    ProofError,
    encode_note,
    key_id_of,
    leaf_hash,
    verify_signature,
)
from clearlane.node.signing import Signer, key_statement

__all__ = ["AuditError", "AuditStep", "Auditor", "Checkpoint", "KeyRecord", "record_kind"]


class AuditError(IntegrityError, RuntimeError, code="AUDIT_CHAIN_BROKEN"):
    """The audit chain cannot be extended (a bad key rotation, a missing signer)."""


@dataclass(frozen=True)
class KeyRecord:
    """A signed key statement: ``init`` (signed by the key) or ``rotate`` (by old and new)."""

    key_id: str
    public_key: bytes
    action: str
    prev_key_id: str | None
    log_seq: int
    at_ms: int
    statement: str
    sig_new: bytes
    sig_prev: bytes | None

    def to_doc(self) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "sig_new": self.sig_new.hex(),
            "sig_prev": None if self.sig_prev is None else self.sig_prev.hex(),
        }


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement of the tree size and root, the log head and the state root."""

    tree_size: int
    tree_root: bytes
    log_seq: int
    log_head: bytes
    state_root: str
    chain_tip: int
    at_ms: int
    key_id: str
    body: str
    signature: bytes

    def to_doc(self) -> dict[str, Any]:
        return {"body": self.body, "signature": self.signature.hex()}


@dataclass
class AuditStep:
    seq: int
    input_prev: bytes
    input_hash: bytes
    body: bytes
    head: bytes
    records: list[tuple[int, str, bytes]] = field(default_factory=list)  # (index, text, leaf hash)
    key_record: KeyRecord | None = None
    checkpoint: Checkpoint | None = None
    state_root: str = ""
    # submission_json of each of the step's submissions, in order (the outbox rows' payloads);
    # empty when not computed (the store then encodes them itself).
    submissions_json: list[bytes] = field(default_factory=list)
    # The transition's "events" rows ([batch, event, at_ms, detail] per batch event) and its
    # "updates" (batch_changes), built once for the body and the store's rows (None: not built).
    batch_events: list[list[Any]] | None = None
    batch_updates: dict[str, dict[str, Any]] | None = None


def record_kind(text: str) -> tuple[str, str]:
    """(kind, ref) of an audit record: ``("batch", batch id)``, ``("key", new key id)``..."""
    fields = text.split("|")
    kind = fields[0].removeprefix("clearlane.").rsplit(".", 1)[0]
    return kind, fields[3] if kind == "key" else fields[1]


class Auditor:
    """Holds the chain head, the checkpoint tree's right edge, the key history and the signer."""

    def __init__(
        self, config: Any, store_id: str, keys: list[KeyRecord], signer: Signer | None = None
    ) -> None:
        self.config = config
        self.store_id = store_id
        self.head = genesis_hash(config.digest)
        self.seq = 0
        self.frontier = Frontier()
        self.fold = RecordFold.for_config(config)
        self.asset_codes = [a.code for a in config.assets]
        self.keys = list(keys)
        self.signer = signer
        self.pending_signer: Signer | None = None
        self.last_checkpoint_seq = -1

    # ------------------------------------------------------------------ another process
    def portable(self) -> Auditor:
        """A copy without the private keys, to hand to the writer process
        (``node/writer_process.py``): a :class:`Signer` refuses to be pickled, so the process
        loads its own from the key directory."""
        other = copy.copy(self)
        other.signer = None
        other.pending_signer = None
        return other

    def adopt(self, other: Auditor) -> None:
        """Take over the chain state another copy of this auditor reached (the writer process's,
        at the end of a pipelined session): head, sequence, tree, record fold, keys and the last
        signed checkpoint. The signer stays this object's."""
        if other.store_id != self.store_id or other.seq < self.seq:
            raise AuditError(f"audit chain at {self.seq} cannot adopt a chain at {other.seq}")
        self.head, self.seq = other.head, other.seq
        self.frontier, self.fold, self.keys = other.frontier, other.fold, list(other.keys)
        self.last_checkpoint_seq = other.last_checkpoint_seq

    # ------------------------------------------------------------------ keys
    @property
    def current_key_id(self) -> str | None:
        return self.keys[-1].key_id if self.keys else None

    def init_record(self, signer: Signer, at_ms: int) -> KeyRecord:
        """The ``init`` statement for a store's first key (not a log entry)."""
        if self.keys:
            raise AuditError("this store already has a signing key; use a rotation")
        statement = key_statement("init", self.store_id, signer.key_id, signer.public_key, None, 0, at_ms)
        record = KeyRecord(
            signer.key_id,
            signer.public_key,
            "init",
            None,
            0,
            at_ms,
            statement,
            signer.sign(statement.encode()),
            None,
        )
        self.keys.append(record)
        self.signer = signer
        return record

    def rotation_payload(self, new: Signer, log_seq: int, at_ms: int) -> dict[str, Any]:
        """The ``key_rotation`` log payload: the statement signed by the current and the new key."""
        old = self.signer
        if old is None or old.key_id != self.current_key_id:
            raise AuditError("rotating needs the current signing key")
        statement = key_statement(
            "rotate", self.store_id, new.key_id, new.public_key, old.key_id, log_seq, at_ms
        )
        return {
            "store": self.store_id,
            "prev_key_id": old.key_id,
            "key_id": new.key_id,
            "public_key": new.public_key.hex(),
            "log_seq": log_seq,
            "at_ms": at_ms,
            "sig_prev": old.sign(statement.encode()).hex(),
            "sig_new": new.sign(statement.encode()).hex(),
        }

    def _rotation_record(self, seq: int, payload: Any) -> KeyRecord:
        try:
            public_key = bytes.fromhex(str(payload["public_key"]))
            key_id, prev = str(payload["key_id"]), str(payload["prev_key_id"])
            at_ms, log_seq = int(payload["at_ms"]), int(payload["log_seq"])
            sig_new, sig_prev = (
                bytes.fromhex(str(payload["sig_new"])),
                bytes.fromhex(str(payload["sig_prev"])),
            )
            store = str(payload["store"])
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditError(f"log entry {seq}: malformed key rotation ({type(exc).__name__})") from None
        if store != self.store_id or log_seq != seq or key_id_of(public_key) != key_id:
            raise AuditError(f"log entry {seq}: key rotation names another store, log position or key")
        current = next((k for k in self.keys if k.key_id == self.current_key_id), None)
        if current is None or prev != current.key_id or any(k.key_id == key_id for k in self.keys):
            raise AuditError(f"log entry {seq}: key rotation does not start from the current key")
        statement = key_statement("rotate", store, key_id, public_key, prev, log_seq, at_ms)
        try:
            verify_signature(current.public_key, sig_prev, statement.encode())
            verify_signature(public_key, sig_new, statement.encode())
        except ProofError:
            raise AuditError(f"log entry {seq}: key rotation signatures do not verify") from None
        return KeyRecord(key_id, public_key, "rotate", prev, log_seq, at_ms, statement, sig_new, sig_prev)

    # ------------------------------------------------------------------ steps
    def step(
        self,
        seq: int,
        at_ms: int,
        kind: str,
        payload: Any,
        payload_bytes: bytes,
        fx: Step,
        source_id: str | None = None,
    ) -> AuditStep:
        """Extend the chain by one step (input + transition entry) and the tree by its records."""
        if seq != self.seq + 1:
            raise AuditError(f"audit chain at {self.seq}, asked to append step {seq}")
        # Each submission's canonical JSON is both in the transition body and the outbox row:
        # encoded once, here, and handed to the store with the audit step.
        submissions = [submission_json(tx) for tx in fx.submissions]
        body_doc, body = transition_body(seq, at_ms, kind, fx, self.asset_codes, source_id, submissions)
        step = self._append(seq, at_ms, kind, payload, payload_bytes, body_doc, body)
        step.submissions_json = submissions
        step.batch_events, step.batch_updates = body_doc["events"], body_doc["updates"]
        return step

    def _append(
        self,
        seq: int,
        at_ms: int,
        kind: str,
        payload: Any,
        payload_bytes: bytes,
        body_doc: dict[str, Any],
        body: bytes,
    ) -> AuditStep:
        """``body`` is ``canonical_json`` of the transition (``body_doc`` plus its submissions)."""
        prev = self.head
        in_hash = input_hash(prev, seq, at_ms, kind, payload_bytes)
        head = transition_hash(in_hash, seq, body)
        step = AuditStep(seq, prev, in_hash, body, head)
        if kind == "key_rotation":
            step.key_record = self._rotation_record(
                seq, payload if isinstance(payload, dict) else json.loads(payload_bytes)
            )
            self.keys.append(step.key_record)
            pending = self.pending_signer
            self.signer = (
                pending if pending is not None and pending.key_id == step.key_record.key_id else None
            )
            self.pending_signer = None
        for text in self.fold.step(kind, payload, body_doc):
            digest = leaf_hash(text.encode())  # once: the record's row and the tree's leaf
            step.records.append((self.frontier.size, text, digest))
            self.frontier.append_hash(digest)
        self.head = head
        self.seq = seq
        return step

    def seal(self, step: AuditStep, state_root: str, at_ms: int, chain_tip: int) -> None:
        """Record the state root and sign a checkpoint when the step added audit records."""
        step.state_root = state_root
        if step.records and self.signer is not None:
            step.checkpoint = self.checkpoint(state_root, at_ms, chain_tip)

    def checkpoint(self, state_root: str, at_ms: int, chain_tip: int) -> Checkpoint:
        """Sign the current tree and chain head."""
        signer = self.signer
        if signer is None:
            raise AuditError("no signing key loaded")
        fields = {
            "store": self.store_id,
            "tree_size": self.frontier.size,
            "tree_root": self.frontier.root().hex(),
            "log_seq": self.seq,
            "log_head": self.head.hex(),
            "state_root": state_root,
            "chain_tip": chain_tip,
            "at_ms": at_ms,
            "key_id": signer.key_id,
        }
        body = encode_note(CHECKPOINT_FORMAT, fields, CHECKPOINT_FIELDS)
        self.last_checkpoint_seq = self.seq
        return Checkpoint(
            self.frontier.size,
            self.frontier.root(),
            self.seq,
            self.head,
            state_root,
            chain_tip,
            at_ms,
            signer.key_id,
            body,
            signer.sign(body.encode()),
        )
