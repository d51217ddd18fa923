"""The pure core: spec, artifacts, attest, ledger, rollout, analysis, gates, insights.

Nothing here performs I/O except through a port passed in by the caller.
May import: ``kiln.errors`` and the standard library / pure third-party libraries
(pydantic for the spec boundary, numpy/scipy for judges, cryptography primitives).
"""
