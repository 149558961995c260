"""model owns the canonical, versioned event schemas (edge models and Arrow schemas), the
stable reject codes, and the lifecycle states a trade moves through."""

from clearlane.model.codes import Reject, RejectCode
from clearlane.model.lifecycle import Lane, TradeState

__all__ = ["Lane", "Reject", "RejectCode", "TradeState"]
