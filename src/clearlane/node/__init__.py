"""node owns the application: the one door every driver (CLI, HTTP, NATS worker, tests) goes through.
It sequences inputs into the log, applies them with the core engine, commits each step, hands
committed transactions to the base layer, feeds chain observations back in as inputs, recovers by
replay, signs checkpoints, validates every input at intake, and keeps the read-side projections and
the public event vocabulary. Storage, the base layer and the clock are reached through ports."""
