"""The service spec, ``kiln.yaml``: typed models, loading with positions, JSON Schema.

``models`` holds the pydantic models (the spec crosses a boundary, so pydantic is
used here and nowhere else in the core); ``loader`` parses YAML text into a
``ServiceSpec`` or a ``SpecError`` that lists every problem with file:line:column;
``schema`` renders the JSON Schema for editors and the reference docs.
"""

from kiln.core.spec.models import Environment, ServiceSpec

__all__ = ["Environment", "ServiceSpec"]
