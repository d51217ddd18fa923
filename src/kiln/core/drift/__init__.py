"""Drift: what differs between the declared state and what really runs (issue 9).

``kiln.core.drift.planner.plan`` is pure: (desired, observed) -> typed findings,
each with a reason a human can read, and typed healing actions. The executor is
``kiln.services.reconcile``.
"""
