"""Pure pieces of the CI/CD pipeline: the JUnit XML report and CI webhook checks.

The pipeline runner (stages, ephemeral test instances, promotion) lives in the
services layer and uses these. May import: ``kiln.core``, ``kiln.errors`` and
the standard library.
"""
