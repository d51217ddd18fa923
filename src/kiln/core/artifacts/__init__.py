"""Pure rules of kiln's artifacts: how layers, images, tags and unpacking must look.

``tarformat`` writes deterministic tar headers, ``compress`` gzips without a
name or time, ``oci`` builds canonical manifests, configs and indexes,
``tags`` is the human tag scheme, ``selection`` the include/exclude globs,
``chunking`` splits the application into stable layers, ``unpack_rules``
decides which tar members are safe, ``tree`` digests unpacked trees,
``retention`` plans garbage collection and ``progress`` types the build's
progress events. Nothing here performs I/O; services and adapters do.

May import: ``kiln.errors``, ``kiln.core.digest`` and the standard library.
"""
