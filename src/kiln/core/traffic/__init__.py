"""Traffic: route tables, their validation and canonical JSON, the precomputed
selection plan routers use per request, and the typed metrics routers report.

Pure: no I/O. The embedded router (``kiln.adapters.traffic.embedded``) and the
HAProxy router (``kiln.adapters.traffic.haproxy``) both consume these types, and
the ``Router`` port (``kiln.ports.traffic``) speaks them.
May import: ``kiln.errors`` and the standard library.
"""
