"""intake owns turning outside input into validated columnar chunks in the canonical schema
(``TRADE_CHUNK_SCHEMA``): CSV / Parquet / JSON-lines files (``readers``), HTTP bodies and bus
messages (``rows``), strict timestamps (``timestamps``) and the column checks they share
(``validate``). Bad rows become rejects with stable codes; nothing invalid reaches the log. The
bulk path is columnar: checks run over Arrow columns and distinct values, Python only touches
rejected rows."""

from clearlane.node.intake.readers import IngestBatch, IngestError, TradeChunk, iter_input, write_rejects
from clearlane.node.intake.validate import TradeValidator

__all__ = ["IngestBatch", "IngestError", "TradeChunk", "TradeValidator", "iter_input", "write_rejects"]
