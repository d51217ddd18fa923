"""Adapters for the ``Router`` port (``kiln.ports.traffic``).

- ``embedded``: ``kiln router``, kiln's own protocol-level HTTP/1.1 proxy process,
  and ``EmbeddedRouterClient``, the port over its 0600 admin socket;
- ``haproxy``: HAProxy driven through its runtime API, never reloaded.

Design and figures: docs/data-plane.md. May import ``kiln.ports``, ``kiln.core``,
``kiln.fsio`` and ``kiln.errors``; never another adapter family.
"""
