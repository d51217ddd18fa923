"""Insights computed from the ledger: DORA's four keys (``dora``). Pure: callers
pass events in; nothing here reads a store or the clock.

May import: ``kiln.core``, ``kiln.errors``.
"""
