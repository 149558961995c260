"""The SQL :class:`~clearlane.node.ports.SilenceStore`: alert silences in the clearing store's
database (migration 0009). Alert cases themselves live in the generic ``cases`` table
(:class:`~clearlane.adapters.sql.recon.SqlReconStore`)."""

from __future__ import annotations

import sqlalchemy as sa

from clearlane.adapters.sql import schema
from clearlane.adapters.sql.store import Store
from clearlane.core.cases.silences import Silence, silence_from_row, silence_row

_big, _txt = sa.BigInteger, sa.Text
silences = sa.Table(
    "silences", schema.metadata,
    sa.Column("silence_id", _txt, primary_key=True), sa.Column("matchers", _txt),
    *(sa.Column(n, _big) for n in ("starts_at_ms", "ends_at_ms")),
    *(sa.Column(n, _txt) for n in ("created_by", "comment")),
    *(sa.Column(n, _big) for n in ("created_at_ms", "updated_at_ms")),
)  # fmt: skip


class SqlSilenceStore:
    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def save_silence(self, silence: Silence) -> None:
        row = silence_row(silence)
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(silences).where(silences.c.silence_id == silence.silence_id).values(**row)
            )
            if done.rowcount == 0:
                conn.execute(sa.insert(silences).values(**row))

    def silence(self, silence_id: str) -> Silence | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(silences).where(silences.c.silence_id == silence_id))
                .mappings()
                .first()
            )
        return None if row is None else silence_from_row(dict(row))

    def silences(self) -> list[Silence]:
        query = sa.select(silences).order_by(silences.c.created_at_ms, silences.c.silence_id)
        with self.engine.connect() as conn:
            return [silence_from_row(dict(r)) for r in conn.execute(query).mappings()]


__all__ = ["SqlSilenceStore"]
