"""adapters owns the thin edges: each turns the outside world into node calls (CLI, HTTP, NATS) or
implements a node port with real I/O (SQL storage, the base layer). Nothing here holds policy."""
