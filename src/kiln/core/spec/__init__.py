"""The service spec, ``kiln.yaml``: typed models, loading with positions, JSON Schema.

``models`` holds the pydantic models (the spec crosses a boundary, so pydantic is
used here and nowhere else in the core); ``loader`` parses YAML text into a
``ServiceSpec`` or a ``SpecError`` that lists every problem with file:line:column,
using ``crosscheck`` (rules across fields: unique names, references) and
``explain`` (validation errors in kiln's words); ``schema`` renders the JSON
Schema for editors and the reference docs; ``durations`` parses ``1h30m``;
``scaffold`` is the text ``kiln init`` writes.
"""

from kiln.core.spec.models import Environment, ServiceSpec

__all__ = ["Environment", "ServiceSpec"]
