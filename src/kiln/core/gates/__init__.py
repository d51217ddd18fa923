"""Policy gates: pure functions from evidence to a verdict with every reason.

A gate never performs I/O. The caller (``kiln.services.gates``) reads the SBOM,
the OSV database, test results and attestation checks, turns them into the
plain dataclasses of ``inputs.py`` and calls ``runner.evaluate``. Every gate
fails closed: missing evidence gives ``Inconclusive`` (which blocks) or
``Failed``, never ``Passed``.

May import: ``kiln.core`` (spec models, ledger kinds, digests), ``kiln.errors``,
the standard library, ``packaging`` and ``celpy``.
"""
