"""Services: kiln's use cases (build, verify, gate, promote, deploy, rollback,
reconcile, audit, report). Each orchestrates the core and the ports it is given.

May import: ``kiln.ports``, ``kiln.core``, ``kiln.errors``. Never an adapter:
adapters are passed in by ``kiln.bootstrap``.
"""
