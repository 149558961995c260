"""The settlement dashboard: the pages people watch the clearing service with.

Owns the static pages (``static/``: plain HTML, CSS and JavaScript; Plotly's bundle is served
from the installed ``plotly`` wheel, never a CDN), the few UI-shaped views the service API lacks
(:mod:`clearlane.dashboard.api`, computed from the service's own read model), their wiring into
the service (:mod:`clearlane.dashboard.service`) and the simulated live market of
``clearlane demo`` (:mod:`clearlane.dashboard.feed`, :mod:`clearlane.dashboard.server`).
"""
