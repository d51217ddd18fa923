"""The pipeline e2e tests share the integration tests' example checkout."""

from tests.integration.pipeline.conftest import project

__all__ = ["project"]
