"""model owns the canonical, versioned event schemas (edge models and Arrow schemas), the
stable reject codes, the lifecycle states of trades and batches (one enum each), and the one
spelling of every id (ids.py)."""

from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.states import BatchState, Lane, TradeState

__all__ = ["BatchState", "Lane", "Reject", "RejectCode", "TradeState"]
