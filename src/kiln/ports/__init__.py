"""Ports: the small Protocols every side effect goes through.

One module per port, named for its role (``clock``, ``artifacts``, ``state``,
``runtime``, ``traffic``, ``metrics``, ``keys``). Adapters implement them; the
core and services only ever see these Protocols. In-memory fakes for unit tests
live in ``tests/fakes`` and check their own contract.

May import: ``kiln.core``, ``kiln.errors``.
"""
