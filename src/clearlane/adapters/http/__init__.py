"""http owns the HTTP edge of ``clearlane serve``: the FastAPI application and its routes
(``app``, ``views``, ``dashboard`` for the few UI-only views, ``ui`` for the static pages),
request/response schemas, API keys and roles (``auth``), RFC 9457 problems, webhooks delivery
and the targets they may reach (``targets``), Prometheus metrics, the limits every request meets
(``guard``: body size, time and depth; ``protocol``: header time and size) and the uvicorn
server wiring (``server``). It validates shape, calls the node's runtime
and reads projections; it holds no clearing policy and no engine state.
"""
