"""model owns the canonical, versioned event schemas (edge models and Arrow schemas), the
stable reject codes, and the lifecycle states a trade moves through."""

from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.states import Lane, TradeState

__all__ = ["Lane", "Reject", "RejectCode", "TradeState"]
