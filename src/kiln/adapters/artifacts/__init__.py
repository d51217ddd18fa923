"""Adapters behind ``kiln.ports.artifacts``.

``local`` is the content-addressed store under ``.kiln/store`` (itself a valid
OCI image layout), ``registry`` an OCI distribution client over httpx, ``git``
the ``SourceRepo`` on the git command line, ``pip`` the ``DependencyInstaller``.
May import: ``kiln.ports``, ``kiln.fsio``, ``kiln.core``, ``kiln.errors``; never
another adapter family.
"""
