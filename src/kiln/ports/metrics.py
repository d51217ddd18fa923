"""The ``MetricSource`` port: per-release readings the analysis judges work from.

A source answers for several releases at once (the canary and its baseline),
from one scrape or one round of queries, so both sides of a comparison are read
at the same moment. What it returns is a ``Reading`` per release:

* ``Counters`` (the router): cumulative requests, errors and a latency
  histogram. The caller keeps the previous reading and hands the judges the
  difference (``kiln.core.analysis.window``), never the cumulative totals.
* ``Gauge`` (Prometheus): the query's value for that release now.
* ``Missing``: no series for that release. Never a zero.

A source that cannot be reached raises ``kiln.errors.Temporary``; one that is
misconfigured (a bad query, metrics that are not Prometheus text) raises
``ConfigError`` or ``Permanent``. The caller turns a ``Temporary`` into
``Missing(error=True)`` for the judges, which count it as a measurement error
(Argo's ``consecutiveErrorLimit``), not as data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from kiln.core.analysis.observations import Reading
from kiln.core.spec.models import AnalysisMetric


class MetricSource(Protocol):
    def read(self, releases: Sequence[str], metric: AnalysisMetric) -> Mapping[str, Reading]:
        """One reading per release named, taken together."""
        ...
