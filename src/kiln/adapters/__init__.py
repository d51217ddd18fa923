"""Adapters: real implementations of the ports (SQLite/PostgreSQL, local CAS and
OCI registry, process/podman/kubernetes runtimes, embedded/HAProxy routers,
router/Prometheus metrics, file keys).

May import: ``kiln.ports``, ``kiln.core``, ``kiln.errors``. Never a service, and
never another adapter family (import-linter's independence contract).
"""
