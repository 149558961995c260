"""The SQL store (SQLAlchemy Core): SQLite by default, PostgreSQL (psycopg 3) by URL.

``Store.open`` takes a SQLite file path or a SQLAlchemy URL (``postgresql://`` and
``postgres://`` mean ``postgresql+psycopg://``); both run the same Alembic migrations. On
PostgreSQL a store may live in its own schema (``schema=``: ``search_path`` is set on every
connection), which is how the scale-out worker keeps one log per partition on one server.

Every engine step is committed in ONE transaction: the input-log entry and its transition
entry (the hash chain of :mod:`clearlane.core.proofs.hashchain`), the step's effects, its audit records
and signed checkpoint (``store/audit_tables.py``) and the new ``applied_seq`` / state root. A process killed at
any instant therefore leaves either the whole step or none of it; on restart the engine is
rebuilt by replaying the log (see :mod:`clearlane.node.node`) and resumes after ``applied_seq``.
SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed step survives a process kill;
``--durable`` (``synchronous=FULL``) also survives power loss at some cost in speed.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import weakref
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.engine import make_url

from clearlane.adapters.sql import audit_tables, schema
from clearlane.adapters.sql.balances import BalancesView
from clearlane.adapters.sql.multirow import insert_rows
from clearlane.adapters.sql.step_rows import CHECKPOINT_SQL, INSERTS, GroupRows
from clearlane.adapters.sql.walcheckpoint import AUTOCHECKPOINT_BYTES, WalCheckpointer
from clearlane.core.engine.core import LogEntry
from clearlane.core.model import ids as model_ids
from clearlane.core.model.chain import TxSubmission, tx_submission_from_dict
from clearlane.core.model.events import Step
from clearlane.core.model.inputs import log_payload
from clearlane.core.proofs.codec import decode_payload, read_table
from clearlane.core.proofs.hashchain import submission_json as submission_json  # re-exported
from clearlane.node.auditor import AuditStep, Checkpoint, KeyRecord
from clearlane.node.ports import StoredEntry as StoredEntry  # re-exported: the node imports it here
from clearlane.node.ports import StoredTransition
from clearlane.node.ports import StoreError as StoreError  # re-exported: defined with the port

if TYPE_CHECKING:
    from clearlane.node.writer import PendingStep

_MIGRATIONS = Path(__file__).with_name("migrations")


_BALANCE_COLUMNS = (
    "idx, owner, asset, purpose, lane, floor_minor, posted_minor, pending_debits_minor, pending_credits_minor"
)
_BALANCE_INSERT = f"INSERT INTO ledger_accounts ({_BALANCE_COLUMNS}) VALUES ({', '.join('?' * 9)})"
_BALANCE_UPDATE = (
    "UPDATE ledger_accounts SET owner = ?, asset = ?, purpose = ?, lane = ?, floor_minor = ?, "
    "posted_minor = ?, pending_debits_minor = ?, pending_credits_minor = ? WHERE idx = ?"
)
SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

BULK_PAGE_SIZE = 65_536
"""A new SQLite store's page size by default: a bulk clear commits steps of thousands of trades,
mostly multi-kilobyte blobs written as overflow-page chains one write a page (the 10M-trade day's
writer: ~15 % less CPU than with 4 KiB pages, docs/PERFORMANCE.md)."""
SERVICE_PAGE_SIZE = 4_096
"""A new store's page size when ``clearlane serve`` creates it: a service commits a step every few
milliseconds, each dirtying a few pages of many tables and indexes, and the write-ahead log takes
whole pages — at 10,000 trades/s, 64 KiB pages cost the loop ~10 % more time than 4 KiB
(docs/PERFORMANCE.md). SQLite's own default."""
_PAGE_SIZES = frozenset(512 << k for k in range(8))


def database_url(target: str | Path) -> str:
    """A SQLAlchemy URL for ``target``: a SQLite path or a URL (PostgreSQL gets psycopg 3)."""
    url = str(target)
    if "://" not in url:
        return f"sqlite:///{Path(url)}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_url(target: str | Path) -> bool:
    return "://" in str(target)


def redact(url: str) -> str:
    """The URL with any password hidden (for messages)."""
    if "://" not in url:
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://", 1)[0] + "://..."


class Store:
    """A clearlane database: log, effects, queries."""

    def __init__(self, engine: SqlEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.schema: str | None = None
        # The ledger_accounts rows this object last committed (write_balances), or None.
        self._balances_written: BalancesView | None = None
        self._max_variables: int | None = None  # SQLite: binds a statement may take (_sqlite_variables)
        # SQLite files: the WAL checkpoints' own thread (walcheckpoint.py), stopped by close().
        self._checkpointer: WalCheckpointer | None = None

    # ------------------------------------------------------------------ open / migrate
    @classmethod
    def open(
        cls,
        target: str | Path,
        *,
        create: bool = True,
        durable: bool = False,
        schema: str | None = None,
        wal_checkpoints: bool = True,
        page_size: int = BULK_PAGE_SIZE,
    ) -> Store:
        """Open (and migrate) a store: a SQLite file path or a database URL.

        ``page_size``: a new SQLite file's page size (an existing file keeps its own):
        :data:`BULK_PAGE_SIZE` by default, :data:`SERVICE_PAGE_SIZE` for a service's store.

        ``schema`` (PostgreSQL only) keeps every table in that schema, created if missing.
        ``wal_checkpoints=False``: no WAL checkpoint thread of this object's own (a second
        process on a store whose opener runs one: the writer process, :func:`reopen`).
        """
        if not is_url(target):
            path = Path(target)
            if not create and not path.exists():
                raise StoreError(f"{path}: no such database")
            path.parent.mkdir(parents=True, exist_ok=True)
        url = database_url(target)
        engine = create_engine(url, future=True)
        dialect = engine.dialect.name
        if schema is not None and (dialect != "postgresql" or not SCHEMA_RE.match(schema)):
            engine.dispose()
            raise StoreError(f"schema {schema!r}: needs PostgreSQL and a lower-case identifier")
        if dialect == "sqlite":
            sync = "FULL" if durable else "NORMAL"
            if page_size not in _PAGE_SIZES:
                engine.dispose()
                raise StoreError(f"page size {page_size}: a power of two from 512 to 65536")

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                # A new file's page size (no effect on an existing one): BULK_PAGE_SIZE,
                # SERVICE_PAGE_SIZE for a service's many small commits.
                cursor.execute(f"PRAGMA page_size={page_size}")
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(f"PRAGMA synchronous={sync}")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA cache_size=-65536")
                # Checkpoints run on a thread of their own (walcheckpoint.py); a commit only
                # checkpoints if that thread falls far behind.
                actual = int(cursor.execute("PRAGMA page_size").fetchone()[0])  # an old file's own
                cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_BYTES // actual}")
                cursor.close()
        elif dialect == "postgresql" and schema is not None:
            # Registered before the first connection, so every pooled connection has it.
            # (synchronous_commit stays on, PostgreSQL's default: a committed step is durable.)
            @event.listens_for(engine, "connect")
            def _search_path(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
                if cursor.fetchone() is None:
                    try:
                        cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                        dbapi_connection.commit()
                    except Exception:  # another process created it at the same instant
                        dbapi_connection.rollback()
                cursor.execute(f'SET search_path TO "{schema}"')
                cursor.close()
                dbapi_connection.commit()

        try:
            store = cls(engine, url)
            store.schema = schema
            store.migrate()
            database = store._sqlite_file()
            if wal_checkpoints and database is not None:
                store._checkpointer = WalCheckpointer(database)
                # A store dropped without close() stops its thread too.
                weakref.finalize(store, store._checkpointer.stop, wait=False)
        except Exception as exc:
            engine.dispose()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{redact(url)}: cannot open the database: {exc}") from exc
        return store

    def reopener(self, durable: bool = False) -> Callable[[], Store] | None:
        """How another process opens this same store (the node's writer process,
        ``node/writer_process.py``): a picklable callable, or None for a database only this
        process can reach (SQLite in memory)."""
        if self.dialect == "sqlite" and self._sqlite_file() is None:
            return None
        return partial(reopen, self.url, durable, self.schema)

    def _sqlite_file(self) -> str | None:
        """The SQLite database's file path; None for another dialect or a database in memory."""
        database = self.engine.url.database
        if self.dialect != "sqlite" or not database or database == ":memory:" or "mode=memory" in self.url:
            return None
        return str(database)

    @property
    def dialect(self) -> str:
        return str(self.engine.dialect.name)

    def migrate(self) -> None:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Two processes opening the same new schema at once migrate one after the other.
                key = int.from_bytes(
                    hashlib.sha256(f"clearlane.migrate:{self.schema}".encode()).digest()[:8],
                    "big",
                    signed=True,
                )
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.engine.dispose()

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        m = schema.meta.c
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(m.value).where(m.key == key)).first()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(schema.meta).where(schema.meta.c.key == key))
            conn.execute(sa.insert(schema.meta).values(key=key, value=value))

    # ------------------------------------------------------------------ log
    def engine_state(self) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            e = schema.engine_state.c
            row = conn.execute(
                sa.select(e.applied_seq, e.state_root, e.log_head, e.now_ms).where(e.id == 1)
            ).first()
        if row is None:
            return None
        return {
            "applied_seq": int(row[0]),
            "state_root": str(row[1]),
            "log_head": bytes(row[2]),
            "now_ms": int(row[3]),
        }

    def log_head(self) -> bytes | None:
        """The audit chain head after the last committed step (None for an empty store)."""
        state = self.engine_state()
        return None if state is None else state["log_head"]

    def has_source(self, source_id: str) -> bool:
        with self.engine.connect() as conn:
            i = schema.input_log.c
            row = conn.execute(
                sa.select(sa.literal(1)).select_from(schema.input_log).where(i.source_id == source_id)
            ).first()
        return row is not None

    def iter_log(self, after_seq: int = 0, upto_seq: int | None = None) -> Iterator[StoredEntry]:
        """Log entries in order, decoded (streamed: one entry in memory at a time)."""
        last = after_seq
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT seq, at_ms, kind, source_id, payload, prev_hash, hash FROM input_log "
                        "WHERE seq > :a ORDER BY seq LIMIT 64"
                    ),
                    {"a": last},
                ).all()
            if not rows:
                return
            for seq, at_ms, kind, source_id, payload, prev_hash, digest in rows:
                if upto_seq is not None and seq > upto_seq:
                    return
                payload = bytes(payload)
                yield StoredEntry(
                    LogEntry(
                        int(seq), int(at_ms), str(kind), log_payload(kind, decode_payload(kind, payload))
                    ),
                    source_id,
                    payload,
                    bytes(prev_hash),
                    bytes(digest),
                )
                last = int(seq)

    # ------------------------------------------------------------------ commit
    def commit_step(
        self,
        entry: LogEntry,
        payload: bytes,
        source_id: str | None,
        step: Step,
        state_root: str,
        now_ms: int,
        audit: AuditStep,
    ) -> bytes:
        """Append ``entry`` and its transition to the log and commit its effects, atomically.

        ``audit`` (from :class:`clearlane.node.auditor.Auditor`) carries the chain hashes, the
        audit records and the checkpoint. Returns the new chain head.
        """
        rows = GroupRows()
        rows.add_step(entry, payload, source_id, step, state_root, now_ms, audit)
        with self.engine.begin() as conn:
            self._flush(conn, rows)
        return audit.head

    def commit_steps(self, steps: Sequence[PendingStep]) -> bytes | None:
        """Commit several applied steps, in log order, in ONE transaction (group commit for the
        pipelined writer, ``node/writer.py``): all of them or none. Returns the chain head.

        The rows of every step are built first (outside the transaction), then written one
        statement per table for the whole group (``_flush``): the same rows, in the same order
        per table, as one step after the other, at a fraction of the statements."""
        rows = GroupRows()
        head = None
        for pending in steps:
            if pending.audit is None:
                raise StoreError(f"step {pending.entry.seq} reached the store without its audit step")
            rows.add_step(
                pending.entry,
                pending.payload,
                pending.source_id,
                pending.step,
                pending.state_root,
                pending.now_ms,
                pending.audit,
            )
            rows.meta.update(pending.meta)
            head = pending.audit.head
        if rows.state is None:
            return head
        with self.engine.begin() as conn:
            self._flush(conn, rows)
        return head

    def _flush(self, conn: Connection, rows: GroupRows) -> None:
        """Write a group's rows: inserts, then updates in log order, then the engine state.

        Updates run after every insert of the group, so a row inserted by one step and updated
        by a later one ends as if the steps had been written one by one; updates of different
        steps keep their order (a run of the same statement is one executemany)."""
        inserts = rows.inserts
        for sql, copy in INSERTS:
            bulk = inserts[sql]
            if bulk and not (copy is not None and self._copy(conn, copy[0], copy[1], copy[2], bulk)):
                self._executemany(conn, sql, bulk)
        for sql, bulk in rows.updates:
            self._executemany(conn, sql, bulk)
        if rows.checkpoints:
            c = schema.checkpoints.c
            next_id = conn.execute(sa.select(sa.func.coalesce(sa.func.max(c.id), 0))).scalar_one() + 1
            self._executemany(
                conn,
                CHECKPOINT_SQL,
                [(next_id + i, *row) for i, row in enumerate(rows.checkpoints)],
            )
        if rows.meta:
            keys = sorted(rows.meta)
            self._executemany(conn, "DELETE FROM meta WHERE key = ?", [(k,) for k in keys])
            self._executemany(
                conn, "INSERT INTO meta (key, value) VALUES (?, ?)", [(k, rows.meta[k]) for k in keys]
            )
        self._executemany(conn, "DELETE FROM engine_state WHERE id = ?", [(1,)])
        self._executemany(
            conn,
            "INSERT INTO engine_state (id, applied_seq, state_root, log_head, now_ms) VALUES (1, ?, ?, ?, ?)",
            [rows.state],  # type: ignore[list-item]  # checked by the callers
        )

    def _executemany(self, conn: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """DBAPI executemany inside ``conn``'s transaction (``?`` markers, rewritten for ``%s``
        drivers): no per-row SQLAlchemy parameter processing on bulk inserts."""
        if self.engine.dialect.paramstyle != "qmark":
            sql = sql.replace("?", "%s")
        cursor = conn.connection.cursor()
        try:
            if len(rows) == 1:
                cursor.execute(sql, rows[0])
            elif not (
                self.dialect == "sqlite" and insert_rows(cursor, sql, rows, self._sqlite_variables(conn))
            ):
                cursor.executemany(sql, rows)
        finally:
            cursor.close()

    def _sqlite_variables(self, conn: Connection) -> int:
        """How many ``?`` one SQLite statement may bind: the library's compiled limit (32,766 by
        default since SQLite 3.32, 250,000 in Debian's build), asked once; 999 where Python
        cannot ask."""
        if self._max_variables is None:
            raw = conn.connection.dbapi_connection
            getlimit = getattr(raw, "getlimit", None)  # Python 3.11+
            self._max_variables = (
                int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)) if getlimit is not None else 999
            )
        return self._max_variables

    COPY_MIN_ROWS = 32

    def _copy(
        self,
        conn: Connection,
        table: str,
        columns: tuple[str, ...],
        types: tuple[str, ...],
        rows: list[tuple[Any, ...]],
    ) -> bool:
        """Bulk path on PostgreSQL: binary ``COPY`` inside the step's transaction (False: not used).

        Measured on a 1M-trade day through the worker: COPY of the outbox and ledger journal
        instead of a pipelined ``executemany`` (see docs/SCALING.md).
        """
        if self.dialect != "postgresql" or len(rows) < self.COPY_MIN_ROWS:
            return False
        cursor = conn.connection.cursor()
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(types))
            for row in rows:
                copy.write_row(row)
        return True

    def write_balances(self, ledger: Any, seq: int | None = None) -> None:
        """Rewrite the ``ledger_accounts`` view from the ledger (a checkpoint, one transaction).

        The journal (``ledger_entries``) is written every step; balances are derived data, so
        they are materialised at checkpoints (end of a clear, after recovery, on close) rather
        than re-written for every changed account on every step.
        """
        view = BalancesView.of(ledger)
        with self.engine.begin() as conn:
            if seq is not None:
                # Which log position the view reflects (clearlane verify checks it against the journal).
                conn.execute(text("DELETE FROM meta WHERE key = 'balances_seq'"))
                conn.execute(
                    text("INSERT INTO meta (key, value) VALUES ('balances_seq', :v)"), {"v": str(seq)}
                )
            if self._balances_written is None:
                self._rewrite_balances(conn, view.rows())
            else:
                self._update_balances(conn, self._balances_written, view)
        self._balances_written = view  # committed: what the table now holds

    def _rewrite_balances(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        conn.execute(text("DELETE FROM ledger_accounts"))
        if self.dialect == "postgresql":
            # COPY: one stream instead of a statement per account (see docs/SCALING.md).
            cursor = conn.connection.cursor()
            with cursor.copy(f"COPY ledger_accounts ({_BALANCE_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            self._executemany(conn, _BALANCE_INSERT, rows)

    def _update_balances(self, conn: Connection, written: BalancesView, view: BalancesView) -> None:
        """Bring the table from ``written`` (what this store wrote last) to ``view``: only the
        rows that differ are updated, new accounts inserted, missing ones deleted — the same
        table as a full rewrite, without re-inserting ~96,000 unchanged rows per checkpoint
        (issue 18). This Store is the view's only writer (the node's); a new Store object, as in
        a restarted process, starts with a full rewrite."""
        changed = view.changed_since(written)
        if len(changed):
            self._executemany(conn, _BALANCE_UPDATE, [(*row[1:], row[0]) for row in view.rows(changed)])
        n, old_n = len(view), len(written)
        if n < old_n:
            self._executemany(conn, "DELETE FROM ledger_accounts WHERE idx >= ?", [(n,)])
        elif n > old_n:
            self._executemany(conn, _BALANCE_INSERT, view.rows(np.arange(old_n, n, dtype=np.int64)))

    def replace_rejects(self, source: str, rejects: list[Any]) -> None:
        """Record edge rejects of one input (a bus message) idempotently: a retry replaces them."""
        with self.engine.begin() as conn:
            conn.execute(sa.delete(schema.rejects).where(schema.rejects.c.source == source))
            if rejects:
                conn.execute(
                    text(
                        "INSERT INTO rejects (log_seq, source, row, input_id, code, error, field, reason) "
                        "VALUES (NULL, :src, :row, :id, :code, :error, :field, :reason)"
                    ),
                    [{**r.to_dict(), "src": source} for r in rejects],
                )

    # ------------------------------------------------------------------ queries
    def outbox_after(self, seq: int) -> list[TxSubmission]:
        with self.engine.connect() as conn:
            o = schema.outbox.c
            rows = conn.execute(sa.select(o.payload).where(o.log_seq > seq).order_by(o.id)).all()
        return [tx_submission_from_dict(json.loads(bytes(r[0]))) for r in rows]

    def find_trade(self, flow_id: str) -> dict[str, Any] | None:
        """The stored record of one trade or payment (scans chunk blobs newest first)."""
        with self.engine.connect() as conn:
            t = schema.trade_chunks.c
            keys = conn.execute(sa.select(t.log_seq, t.part).order_by(t.log_seq.desc(), t.part)).all()
            for log_seq, part in keys:
                blob = conn.execute(
                    sa.select(t.blob).where(t.log_seq == log_seq, t.part == part)
                ).scalar_one()
                table = read_table(bytes(blob))
                hit = table.filter(pc.equal(table.column("flow_id"), flow_id))
                if hit.num_rows:
                    record: dict[str, Any] = hit.slice(0, 1).to_pylist()[0]
                    record["log_seq"] = int(log_seq)
                    return record
        return None

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(schema.batches).where(schema.batches.c.batch_id == batch_id))
                .mappings()
                .first()
            )
            if row is None:
                return None
            e = schema.batch_events.c
            events = conn.execute(
                sa.select(e.event, e.at_ms, e.detail).where(e.batch_id == batch_id).order_by(e.id)
            ).all()
        out = dict(row)
        out["events"] = [{"event": e, "at_ms": int(a), "detail": d} for e, a, d in events]
        return out

    def l1_group(self, group_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            g = schema.l1_groups
            row = conn.execute(sa.select(g).where(g.c.group_id == group_id)).mappings().first()
        return None if row is None else dict(row)

    def l1_group_for_batch(self, batch_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            g = schema.l1_groups
            row = (
                conn.execute(sa.select(g).where(g.c.origin == model_ids.unwound_origin(batch_id)))
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    def batch_anchors(self, batch_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Root, anchor transaction and height and attempts of the given stored batches, by id."""
        if not batch_ids:
            return {}
        b = schema.batches.c
        stmt = sa.select(b.batch_id, b.root, b.anchor_tx, b.anchor_height, b.attempts).where(
            b.batch_id.in_(list(batch_ids))
        )
        with self.engine.connect() as conn:
            return {str(r["batch_id"]): dict(r) for r in conn.execute(stmt).mappings()}

    def batch_net(self, batch_id: str) -> bytes | None:
        """A cleared batch's net positions (an Arrow IPC blob), or None."""
        stmt = sa.select(schema.batches.c.net).where(schema.batches.c.batch_id == batch_id)
        with self.engine.connect() as conn:
            blob = conn.execute(stmt).scalar()
        return None if blob is None else bytes(blob)

    def first_trade_chunk(self) -> pa.Table | None:
        """The trade records of the first logged chunk (None for a store without trades)."""
        t = schema.trade_chunks.c
        stmt = sa.select(t.blob).order_by(t.log_seq).limit(1)
        with self.engine.connect() as conn:
            blob = conn.execute(stmt).scalar()
        return None if blob is None else read_table(bytes(blob))

    def trade_chunk(self, log_seq: int, part: int) -> pa.Table | None:
        """The trade records of one stored chunk, or None."""
        t = schema.trade_chunks.c
        stmt = sa.select(t.blob).where(t.log_seq == log_seq, t.part == part)
        with self.engine.connect() as conn:
            blob = conn.execute(stmt).scalar()
        return None if blob is None else read_table(bytes(blob))

    def balances(self) -> list[dict[str, Any]]:
        """The materialised ledger balances (as of the last :meth:`write_balances`), by index."""
        stmt = sa.select(schema.ledger_accounts).order_by(schema.ledger_accounts.c.idx)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def log_payload(self, seq: int) -> tuple[str, bytes] | None:
        """The kind and encoded payload of log entry ``seq``, or None."""
        i = schema.input_log.c
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(i.kind, i.payload).where(i.seq == seq)).first()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def source_ids_between(self, lo: str, hi: str) -> set[str]:
        """Logged source ids in ``[lo, hi)`` (a source's entries share a prefix)."""
        i = schema.input_log.c
        stmt = sa.select(i.source_id).where(i.source_id >= lo, i.source_id < hi)
        with self.engine.connect() as conn:
            return {str(r[0]) for r in conn.execute(stmt)}

    def last_source_ids(self, pattern: str, limit: int) -> list[str]:
        """The source ids matching the LIKE ``pattern`` of the last ``limit`` such entries, newest first."""
        i = schema.input_log.c
        stmt = sa.select(i.source_id).where(i.source_id.like(pattern)).order_by(i.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [str(r[0]) for r in conn.execute(stmt)]

    def sources_upto(self, upto_seq: int, limit: int) -> list[tuple[int, str | None]]:
        """(seq, source id) of up to ``limit`` entries at or before ``upto_seq``, newest first."""
        i = schema.input_log.c
        stmt = sa.select(i.seq, i.source_id).where(i.seq <= upto_seq).order_by(i.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [(int(seq), source) for seq, source in conn.execute(stmt)]

    def batch_events_between(self, after_seq: int, upto_seq: int) -> list[dict[str, Any]]:
        """Batch lifecycle events logged in ``(after_seq, upto_seq]``, in order, with their pool."""
        e, b = schema.batch_events.c, schema.batches.c
        stmt = (
            sa.select(e.batch_id, b.pool, e.event, e.at_ms, e.detail, e.log_seq)
            .join_from(schema.batch_events, schema.batches, b.batch_id == e.batch_id)
            .where(e.log_seq > after_seq, e.log_seq <= upto_seq)
            .order_by(e.id)
        )
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def rejects_after(self, after_id: int) -> list[dict[str, Any]]:
        """Rejects with an id above ``after_id``, in order, with their log entry's source id."""
        r, i = schema.rejects.c, schema.input_log.c
        stmt = (
            sa.select(
                r.id, r.log_seq, r.source, r.row, r.input_id, r.code, r.error, r.field, r.reason, i.source_id
            )
            .join_from(schema.rejects, schema.input_log, i.seq == r.log_seq, isouter=True)
            .where(r.id > after_id)
            .order_by(r.id)
        )
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(stmt).mappings()]

    def reject_reason(self, input_id: str, code: int) -> dict[str, Any] | None:
        """The field and reason of the latest reject of ``input_id`` with ``code``, or None."""
        r = schema.rejects.c
        stmt = (
            sa.select(r.field, r.reason)
            .where(r.input_id == input_id, r.code == code)
            .order_by(r.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).mappings().first()
        return None if row is None else dict(row)

    # ------------------------------------------------------------------ audit trail
    def audit_keys(self) -> list[KeyRecord]:
        """Every signing-key statement, oldest first."""
        return audit_tables.read_keys(self.engine)

    def add_audit_key(self, record: KeyRecord) -> None:
        with self.engine.begin() as conn:
            audit_tables.write_key(conn, record)

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        with self.engine.begin() as conn:
            audit_tables.write_checkpoint(conn, checkpoint)

    def latest_checkpoint(self) -> Checkpoint | None:
        latest = audit_tables.latest_checkpoint(self.engine)
        return None if latest is None else latest[1]

    def audit_record_hashes(self) -> list[bytes]:
        """Leaf hashes of the checkpoint tree, in tree order."""
        return audit_tables.read_record_hashes(self.engine)

    def iter_transitions(self, after_seq: int = 0, upto_seq: int | None = None) -> Iterator[StoredTransition]:
        for row in audit_tables.iter_transitions(self.engine, after_seq, upto_seq):
            yield StoredTransition(
                int(row.seq), bytes(row.body), bytes(row.prev_hash), bytes(row.hash), str(row.state_root)
            )

    # Raw SQL passthroughs: for evidence/ (which re-reads the tables on purpose, to distrust the
    # store) and for tests that inspect tables. Application code uses the named methods above.
    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(sql), params).mappings().all()]


def reopen(url: str, durable: bool, schema: str | None) -> Store:
    """Open an existing store from a second process (:meth:`Store.reopener`): no migration
    beyond what its first opener ran (the schema is at head), no WAL checkpoint thread."""
    return Store.open(url, create=False, durable=durable, schema=schema, wal_checkpoints=False)
