"""Attestations: signed statements about artifacts, and the pure rules that judge them.

``dsse`` (envelopes and PAE), ``statement`` (in-toto Statement v1), ``provenance``
(SLSA provenance v1 from ``BuildFacts``), ``sbom`` (CycloneDX from ``Dependency``
lists), ``predicates`` (kiln's own predicate types), ``policy`` (``trust.yaml``),
``verify`` (envelopes + policy + subject → ``Verified`` | ``Rejected``) and
``referrers`` (OCI referrers manifests and the tag-schema fallback).

Pure: no file, network or clock access. May import ``kiln.core`` and ``kiln.errors``.
"""
