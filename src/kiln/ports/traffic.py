"""The ``Router`` port: how the controller moves traffic and reads what it did.

Two adapters implement it the same way: the embedded router's admin client
(``kiln.adapters.traffic.embedded.client``) and the HAProxy router driven through
its runtime API (``kiln.adapters.traffic.haproxy``). A fake for unit tests checks
the same contract (generations never go backwards).

Contract:
- ``apply`` installs a whole table atomically for new requests and returns the
  generation now served. A table older than the current one raises ``Refused``;
  re-applying the current generation with the same content is a no-op, with
  different content it is refused too. In-flight requests finish on the
  backend they started on.
- ``current`` is the table being served (None before the first apply).
- ``metrics`` are cumulative per-release counters since the data plane started.
- ``health`` says whether the data plane itself serves, and its view of backends.
Errors: ``Temporary`` when the data plane cannot be reached, ``InvalidInput``
for a table it rejects, ``Refused`` for an old generation.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from kiln.core.traffic.metrics import DataPlaneHealth, RouterMetrics
from kiln.core.traffic.table import RouteTable


class Router(Protocol):
    def apply(self, table: RouteTable) -> int:
        """Serve ``table`` from now on; return its generation."""
        ...

    def current(self) -> RouteTable | None:
        """The table being served, or None if none was ever applied."""
        ...

    def metrics(self) -> RouterMetrics:
        """Per-release request, error and latency counters (cumulative)."""
        ...

    def health(self) -> DataPlaneHealth:
        """Whether the data plane is serving, and what it knows of its backends."""
        ...


@runtime_checkable
class LiveView(Protocol):
    """A router whose data plane can be changed behind kiln's back (HAProxy's runtime
    API, for one) and that can read its live state back to compare (issue 9)."""

    def differences(self) -> list[str]:
        """How the live data plane differs from the table last applied; [] when it matches."""
        ...
