"""One ``MetricSource`` for an environment whose metrics come from several sources.

An analysis may mix router metrics and Prometheus queries; the controller
holds one ``MetricSources`` and asks it, and each metric goes to the source
its ``source:`` names. A metric whose source is not configured is a
``ConfigError`` naming the setting to add, never a silent skip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kiln.core.analysis.observations import Reading
from kiln.core.spec.models import AnalysisMetric, MetricSourceKind
from kiln.errors import ConfigError
from kiln.ports.metrics import MetricSource


class MetricSources:
    def __init__(
        self, *, router: MetricSource | None = None, prometheus: MetricSource | None = None
    ) -> None:
        self._by_kind: dict[MetricSourceKind, MetricSource | None] = {
            MetricSourceKind.ROUTER: router,
            MetricSourceKind.PROMETHEUS: prometheus,
        }

    def read(self, releases: Sequence[str], metric: AnalysisMetric) -> Mapping[str, Reading]:
        source = self._by_kind.get(metric.source)
        if source is None:
            raise ConfigError(
                f"analysis metric {metric.name!r} reads from {metric.source.value}, "
                "which is not configured",
                hint="set the Prometheus URL (KILN_PROMETHEUS_URL or settings)"
                if metric.source is MetricSourceKind.PROMETHEUS
                else "the environment needs a router exporting /metrics",
            )
        return source.read(releases, metric)
