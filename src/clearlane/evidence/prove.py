"""Trade inclusion proofs and checkpoint consistency files, built from a store.

A batch row keeps only its flow ids in leaf order and its net instructions, not its leaves: the
:class:`Prover` recomputes a batch's leaves from the stored trade records (in batch order, with
:func:`clearlane.core.engine.flows.leaf_texts`), refuses the batch unless the recomputed root equals
the committed one, and caches the batch's tree, so every further proof in that batch is read
out of memory (a few microseconds for the audit path). The checkpoint tree is built once per
checkpoint size from the stored audit-record hashes.
"""

from __future__ import annotations

import tomllib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clearlane.adapters.sql import audit_tables
from clearlane.adapters.sql.store import Store
from clearlane.core.config.model import ClearingConfig, parse_config
from clearlane.core.engine.flows import Flows, leaf_texts
from clearlane.core.errors import NotFound
from clearlane.core.model import ids as model_ids
from clearlane.core.model.states import TradeState
from clearlane.core.proofs.codec import read_table
from clearlane.core.proofs.merkle import MerkleTree, hash_leaves
from clearlane.core.proofs.verify import (
    CHECKPOINT_FIELDS,
    CHECKPOINT_FORMAT,
    CONSISTENCY_DOC_FORMAT,
    PROOF_DOC_FORMAT,
    canonical_document,
    parse_note,
    proof_summary,
)
from clearlane.node.auditor import Checkpoint

__all__ = ["BatchTree", "EvidenceError", "Prover", "flows_from_records", "stored_config"]


class EvidenceError(NotFound, RuntimeError, code="NO_PROOF"):
    """No proof can be given (unknown trade, not in a batch, or records that do not add up)."""

    def __init__(self, message: str, *, tampered: bool = False) -> None:
        super().__init__(message)
        self.tampered = tampered


def stored_config(store: Store) -> ClearingConfig:
    toml_text = store.get_meta("config_toml")
    if toml_text is None:
        raise EvidenceError("the database has no configuration (empty store)")
    return parse_config(tomllib.loads(toml_text), source="stored config")


def _codes(column: pa.ChunkedArray | pa.Array, lookup: dict[str, int], what: str) -> np.ndarray:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_dictionary(array.type):
        array = pc.dictionary_encode(array)
    values = array.dictionary.to_pylist()
    mapping = np.array([lookup.get(v, -1) for v in values] + [-1], dtype=np.int32)
    indices = pc.fill_null(array.indices, pa.scalar(len(values), array.indices.type)).to_numpy(
        zero_copy_only=False
    )
    codes: np.ndarray = mapping[indices]
    if len(codes) and codes.min() < 0:
        raise EvidenceError(f"trade records name an unknown {what}", tampered=True)
    return codes


def _plain(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def flows_from_records(table: pa.Table, config: ClearingConfig) -> Flows:
    """Stored trade records back into the engine's flow columns (as they were when batched)."""
    participants = {pid: i for i, pid in enumerate(config.participant_ids)}
    assets = config.asset_index()
    n = table.num_rows

    def col(name: str) -> np.ndarray:
        values: np.ndarray = table.column(name).to_numpy()
        return values

    return Flows(
        ids=_plain(table.column("flow_id")),
        kind=col("kind").astype(np.int8),
        buyer=_codes(table.column("buyer"), participants, "participant"),
        seller=_codes(table.column("seller"), participants, "participant"),
        base=_codes(table.column("base"), assets, "asset"),
        quote=_codes(table.column("quote"), assets, "asset"),
        qty=col("qty_minor").astype(np.int64),
        quote_amt=col("quote_minor").astype(np.int64),
        fee_buyer=col("fee_buyer_minor").astype(np.int64),
        fee_seller=col("fee_seller_minor").astype(np.int64),
        time_ms=col("received_ms").astype(np.int64),
        executed_ms=col("executed_ms").astype(np.int64),
        pool=np.full(n, -1, dtype=np.int32),
        batch_seq=col("batch_seq").astype(np.int64),
        exch_batch=_plain(table.column("exch_batch_id")),
    )


def batch_member_mask(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For stored trade records: (rows batched on L2, their pool name codes, pool dictionary)."""
    lane = table.column("lane").combine_chunks()
    pool = table.column("pool").combine_chunks()
    state = table.column("state").to_numpy()
    lane_l2 = lane.dictionary.to_pylist().index("L2") if "L2" in lane.dictionary.to_pylist() else -1
    lane_codes = pc.fill_null(lane.indices, pa.scalar(-1, lane.indices.type)).to_numpy(zero_copy_only=False)
    member = (lane_codes == lane_l2) & (state != TradeState.REJECTED)
    pool_codes = pc.fill_null(pool.indices, pa.scalar(-1, pool.indices.type)).to_numpy(zero_copy_only=False)
    return member & (pool_codes >= 0), pool_codes, np.array(pool.dictionary.to_pylist(), dtype=object)


@dataclass
class BatchTree:
    """One batch's leaves and tree, recomputed from the trade records and checked."""

    batch_id: str
    row: dict[str, Any]
    leaves: pa.Array
    tree: MerkleTree
    index: dict[str, int]
    source_seqs: np.ndarray
    records: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # per checkpoint size


class Prover:
    """Builds proofs from one store; caches batch trees and the checkpoint tree."""

    def __init__(self, store: Store, *, cache_batches: int = 8) -> None:
        self.store = store
        self.config = stored_config(store)
        self.participant_ids = pa.array(self.config.participant_ids, type=pa.string())
        self.asset_codes = pa.array([a.code for a in self.config.assets], type=pa.string())
        self._batches: OrderedDict[str, BatchTree] = OrderedDict()
        self._cache_batches = cache_batches
        self._tree: tuple[int, MerkleTree] | None = None
        self._keys: list[dict[str, Any]] | None = None

    # ------------------------------------------------------------------ batches
    def batch_records(self, row: dict[str, Any]) -> pa.Table:
        """The trade records of a batch in leaf order (scans chunks back from the close step),
        with an extra ``_log_seq`` column: the log entry each record came from."""
        pool, seq, want = str(row["pool"]), int(row["seq"]), int(row["flows"])
        parts: list[pa.Table] = []
        found = 0
        with self.store.engine.connect() as conn:
            from sqlalchemy import text

            keys = conn.execute(
                text(
                    "SELECT log_seq, part FROM trade_chunks WHERE log_seq <= :s ORDER BY log_seq DESC, part DESC"
                ),
                {"s": int(row["log_seq"])},
            ).all()
            for log_seq, part in keys:
                blob = conn.execute(
                    text("SELECT blob FROM trade_chunks WHERE log_seq = :s AND part = :p"),
                    {"s": log_seq, "p": part},
                ).scalar_one()
                table = read_table(bytes(blob))
                member, pool_codes, pools = batch_member_mask(table)
                if pool not in pools:
                    continue
                rows = (
                    member
                    & (pool_codes == list(pools).index(pool))
                    & (table.column("batch_seq").to_numpy() == seq)
                )
                if rows.any():
                    hit = table.filter(pa.array(rows))
                    parts.append(
                        hit.append_column("_log_seq", pa.array(np.full(hit.num_rows, int(log_seq), np.int64)))
                    )
                    found += int(rows.sum())
                    if found >= want:
                        break
        parts.reverse()
        if found != want:
            raise EvidenceError(
                f"batch {row['batch_id']}: {found} stored trade records, the batch says {want}", tampered=True
            )
        return pa.concat_tables(parts).combine_chunks() if len(parts) > 1 else parts[0]

    def batch_tree(self, batch_id: str) -> BatchTree:
        cached = self._batches.get(batch_id)
        if cached is not None:
            self._batches.move_to_end(batch_id)
            return cached
        row = self.store.batch(batch_id)
        if row is None:
            raise EvidenceError(f"batch {batch_id} not found")
        records = self.batch_records(row)
        detail = read_table(bytes(row["detail"]))
        if not records.column("flow_id").combine_chunks().equals(detail.column("flow_id").combine_chunks()):
            raise EvidenceError(
                f"batch {batch_id}: trade records are not in the batch's leaf order", tampered=True
            )
        flows = flows_from_records(records, self.config)
        leaves = leaf_texts(flows, batch_id, self.participant_ids, self.asset_codes, self.config.house_index)
        tree = MerkleTree.from_leaf_hashes(hash_leaves(leaves), copy=False)
        if tree.root != bytes(row["root"]):
            raise EvidenceError(
                f"batch {batch_id}: leaves recomputed from the trade records do not give the committed root",
                tampered=True,
            )
        ids = flows.ids.to_pylist()
        built = BatchTree(
            batch_id,
            row,
            leaves,
            tree,
            {flow_id: i for i, flow_id in enumerate(ids)},
            records.column("_log_seq").to_numpy(),
        )
        self._batches[batch_id] = built
        while len(self._batches) > self._cache_batches:
            self._batches.popitem(last=False)
        return built

    def batch_of(self, flow_id: str) -> str:
        """The batch a trade was cleared in; EvidenceError for L1 / rejected / unknown trades."""
        for tree in self._batches.values():
            if flow_id in tree.index:
                return tree.batch_id
        record = self.store.find_trade(flow_id)
        if record is None:
            raise EvidenceError(f"trade {flow_id!r} not found")
        if int(record["state"]) == TradeState.REJECTED:
            raise EvidenceError(f"trade {flow_id!r} was rejected: it is in no batch")
        if record["lane"] != "L2" or record["pool"] is None:
            raise EvidenceError(
                f"trade {flow_id!r} settled gross on Layer-1: it is in no batch "
                "(its base-layer transaction is its proof)"
            )
        return model_ids.batch_id(record["pool"], int(record["batch_seq"]))

    # ------------------------------------------------------------------ checkpoint tree
    def latest_checkpoint(self) -> Checkpoint:
        latest = audit_tables.latest_checkpoint(self.store.engine)
        if latest is None:
            raise EvidenceError("the store has no signed checkpoint yet")
        return latest[1]

    def checkpoint_tree(self, size: int) -> MerkleTree:
        if self._tree is None or self._tree[0] != size:
            hashes = audit_tables.read_record_hashes(self.store.engine)[:size]
            if len(hashes) != size:
                raise EvidenceError(
                    f"checkpoint covers {size} audit records, the store has {len(hashes)}", tampered=True
                )
            array = (
                np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(size, 32)
                if size
                else np.zeros((0, 32), dtype=np.uint8)
            )
            self._tree = (size, MerkleTree.from_leaf_hashes(array))
        return self._tree[1]

    def key_docs(self) -> list[dict[str, Any]]:
        if self._keys is None:
            self._keys = [k.to_doc() for k in audit_tables.read_keys(self.store.engine)]
        return self._keys

    # ------------------------------------------------------------------ documents
    def proof(self, flow_id: str, checkpoint: Checkpoint | None = None) -> dict[str, Any]:
        """The ``clearlane.proof.v1`` document for one trade (see docs/AUDIT.md)."""
        batch = self.batch_tree(self.batch_of(flow_id))
        index = batch.index[flow_id]
        cp = checkpoint or self.latest_checkpoint()
        tree = self.checkpoint_tree(cp.tree_size)
        records = batch.records.get(cp.tree_size)
        if records is None:
            records = [
                (i, t)
                for i, t in audit_tables.records_for(self.store.engine, batch.batch_id)
                if i < cp.tree_size
            ]
            batch.records[cp.tree_size] = records
        parts: dict[str, Any] = {"batch": None, "anchor": None, "final": None, "unwind": None}
        for i, text in records:
            kind = text.split("|", 1)[0].removeprefix("clearlane.").rsplit(".", 1)[0]
            entry = {"record": text, "index": i, "path": [h.hex() for h in tree.inclusion_proof(i)]}
            if kind == "reorg":
                parts["anchor"] = None
            elif kind in parts:
                parts[kind] = entry
        if parts["batch"] is None:
            raise EvidenceError(
                f"batch {batch.batch_id} is not covered by checkpoint (tree size {cp.tree_size})"
            )
        doc: dict[str, Any] = {
            "format": PROOF_DOC_FORMAT,
            "trade_id": flow_id,
            "leaf": {
                "text": batch.leaves[index].as_py(),
                "index": index,
                "path": [h.hex() for h in batch.tree.inclusion_proof(index)],
            },
            **parts,
            "checkpoint": cp.to_doc(),
            "keys": self.key_docs(),
            "summary": None,
        }
        doc["summary"] = proof_summary(
            doc, parse_note(cp.body, CHECKPOINT_FORMAT, CHECKPOINT_FIELDS), check=False
        )
        return doc

    def proof_bytes(self, flow_id: str) -> bytes:
        return canonical_document(self.proof(flow_id))

    def consistency(self, old_id: int, new_id: int) -> dict[str, Any]:
        """The ``clearlane.consistency.v1`` document between two checkpoints (by id)."""
        checkpoints = dict(audit_tables.read_checkpoints(self.store.engine))
        if old_id not in checkpoints or new_id not in checkpoints:
            missing = old_id if old_id not in checkpoints else new_id
            raise EvidenceError(f"checkpoint {missing} not found (the store has {len(checkpoints)})")
        old, new = checkpoints[old_id], checkpoints[new_id]
        if old.tree_size > new.tree_size:
            raise EvidenceError(f"checkpoint {old_id} is later than checkpoint {new_id}")
        tree = self.checkpoint_tree(new.tree_size)
        proof = tree.consistency_proof(old.tree_size) if old.tree_size else []
        return {
            "format": CONSISTENCY_DOC_FORMAT,
            "old": old.to_doc(),
            "new": new.to_doc(),
            "proof": [h.hex() for h in proof],
            "keys": self.key_docs(),
        }
