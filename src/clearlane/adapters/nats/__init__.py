"""nats owns the NATS JetStream transport of the scale-out deployment: the subjects and message
formats (``messages``), the publisher that routes input rows to pool subjects (``publish``) and
the partitioned ``clearlane worker`` that consumes them exactly once into a store and publishes
lifecycle events back (``worker``); and, for ``clearlane serve --nats``, the publisher of
the service's public events (``events_out``) and the escrow actions taken from the bus
(``escrow_in``). The engine never sees the bus: a worker turns each message
into ordinary log entries with source ids derived from the JetStream stream sequence."""
