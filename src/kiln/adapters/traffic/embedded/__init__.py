"""The embedded router: ``kiln router``, a protocol-level HTTP/1.1 reverse proxy.

- ``proxy``: the data plane (asyncio protocols + httptools parsers, upstream
  pools, the atomic route swap, retries, passive health, mirroring);
- ``stats``: per-release counters and their Prometheus exposition;
- ``admin``: the admin API on a 0600 unix socket (apply/get table, metrics,
  health, drain);
- ``server``: process wiring (uvloop, persistence of the last table, signals);
- ``client``: the ``Router`` port implemented over the admin socket, for the
  controller.

May import: ``kiln.ports``, ``kiln.core``, ``kiln.fsio``, ``kiln.errors``.
"""
