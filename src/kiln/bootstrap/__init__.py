"""The composition root: turns resolved settings into adapters and hands them to
services. The only layer that knows both services and adapters.

May import: ``kiln.services``, ``kiln.adapters``, ``kiln.ports``, ``kiln.core``.
"""
