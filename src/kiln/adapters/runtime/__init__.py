"""Runtime providers: implementations of ``kiln.ports.runtime.Provider``.

``process`` (default): an instance is a host process started from the read-only
unpacked tree, optionally in a bubblewrap sandbox. ``podman``: an instance is a
container run from the OCI layout. Helpers: ``procfs`` (reading /proc),
``records`` (persisted instance records), ``portpick`` (free loopback ports),
``logpipe`` (the per-instance log rotator process), ``sandbox`` (bwrap argv),
``probe`` (HTTP readiness).

May import: ``kiln.ports``, ``kiln.core``, ``kiln.fsio``, ``kiln.errors``.
"""
