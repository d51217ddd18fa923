"""Secret adapters: the encrypted file store and the reference resolver.

``filestore``: one AES-256-GCM encrypted file per secret name under
``.kiln/secrets/``, numbered versions, key in ``.kiln/keys/secrets.key`` (0600).
``resolver``: resolves store, env and file references for providers.

May import: ``kiln.ports``, ``kiln.core``, ``kiln.fsio``, ``kiln.errors``.
"""
