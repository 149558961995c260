"""The settlement dashboard: a live, in-memory view of the clearing engine for people.

Owns the dashboard's read model (:mod:`clearlane.dashboard.model`: aggregates kept up to date
from the engine's effects, columnar, no Python object per trade), the JSON endpoints the pages
need and the coalesced live stream (:mod:`clearlane.dashboard.api`), the static pages
(``static/``: plain HTML, CSS and JavaScript; Plotly's bundle is served from the installed
``plotly`` wheel, never a CDN) and the simulated live market of ``clearlane demo``
(:mod:`clearlane.dashboard.feed`).
"""

from clearlane.dashboard.model import DashboardModel

__all__ = ["DashboardModel"]
