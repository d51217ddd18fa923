"""PromQL queries over Prometheus' HTTP API (``/api/v1/query``, ``/api/v1/query_range``).

A metric's ``query`` names the release as ``{{release}}``; it is substituted
per release (the release id is checked to be a plain token first, so it cannot
break out of a label matcher). An instant query must return exactly one value
(a scalar, or a vector with one series): several series are refused as
``Missing`` with a hint to aggregate, because silently taking the first one --
as Argo's ``result[0]`` does -- judges an arbitrary series.

Errors are translated here: a connection failure, a timeout or a 5xx is
``Temporary`` (retry on the next measurement); a query Prometheus rejects is a
``ConfigError`` naming the query; a body that is not the documented JSON is
``Permanent``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from kiln.core.analysis.observations import Gauge, Missing, Reading
from kiln.core.spec.models import AnalysisMetric
from kiln.errors import ConfigError, InvalidInput, Permanent, Temporary
from kiln.ports.clock import Clock, SystemClock

_PLACEHOLDER = re.compile(r"\{\{\s*release\s*\}\}")
_RELEASE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}")


def render_query(query: str, release: str) -> str:
    """``query`` with every ``{{release}}`` replaced by ``release``."""
    if not _RELEASE.fullmatch(release):
        raise InvalidInput(
            f"release id {release!r} cannot be put into a PromQL query",
            hint="release ids are letters, digits and . _ : @ + -",
        )
    return _PLACEHOLDER.sub(release, query)


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]


class PrometheusMetrics:
    """A ``MetricSource`` over a Prometheus server."""

    def __init__(
        self,
        *,
        url: str,
        clock: Clock | None = None,
        client: httpx.Client | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/")
        self._clock = clock or SystemClock()
        self._client = client or httpx.Client(timeout=timeout)
        self._owns_client = client is None

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # --- the HTTP API -------------------------------------------------------------

    def query(self, promql: str, *, at: float | None = None) -> list[Series]:
        """An instant query; each series has one point (a scalar is one series)."""
        params: dict[str, str] = {"query": promql}
        if at is not None:
            params["time"] = repr(at)
        data = self._call("/api/v1/query", params, promql)
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar" and isinstance(result, list):
            return [Series({}, (_point(result),))]
        if kind == "vector" and isinstance(result, list):
            return [Series(_labels(item), (_point(item.get("value")),)) for item in result]
        raise Permanent(f"Prometheus returned an unexpected {kind!r} result for {promql!r}")

    def query_range(self, promql: str, *, start: float, end: float, step: float) -> list[Series]:
        """A range query from ``start`` to ``end`` (unix seconds) every ``step`` seconds."""
        params = {"query": promql, "start": repr(start), "end": repr(end), "step": repr(step)}
        data = self._call("/api/v1/query_range", params, promql)
        result = data.get("result")
        if data.get("resultType") != "matrix" or not isinstance(result, list):
            raise Permanent(f"Prometheus returned no matrix for range query {promql!r}")
        return [
            Series(_labels(item), tuple(_point(v) for v in item.get("values", [])))
            for item in result
        ]

    # --- the port -----------------------------------------------------------------

    def read(self, releases: Sequence[str], metric: AnalysisMetric) -> Mapping[str, Reading]:
        if not metric.query:
            raise ConfigError(f"analysis metric {metric.name!r} has no PromQL query")
        out: dict[str, Reading] = {}
        for release in releases:
            series = self.query(render_query(metric.query, release))
            at = self._clock.monotonic()
            if not series:
                out[release] = Missing(at, f"{metric.name}: the query returned no series")
            elif len(series) > 1:
                out[release] = Missing(
                    at,
                    f"{metric.name}: the query returned {len(series)} series; "
                    "aggregate it (sum, avg, max) to one value",
                )
            else:
                value = series[0].points[0][1]
                if math.isnan(value) or math.isinf(value):
                    out[release] = Missing(at, f"{metric.name}: the query's value is {value}")
                else:
                    out[release] = Gauge(at, value)
        return out

    # --- internals ----------------------------------------------------------------

    def _call(self, path: str, params: dict[str, str], promql: str) -> dict[str, Any]:
        try:
            response = self._client.post(self.url + path, data=params)
        except httpx.TransportError as exc:
            raise Temporary(
                f"cannot reach Prometheus at {self.url}: {exc.__class__.__name__}",
                delay=1.0,
                hint="is Prometheus running? kiln retries on the next measurement",
            ) from exc
        if response.status_code >= 500 and response.status_code != 503:
            raise Temporary(f"Prometheus answered HTTP {response.status_code}", delay=1.0)
        if response.status_code == 503:
            raise Temporary("Prometheus is not ready (HTTP 503)", delay=1.0)
        try:
            body = response.json()
        except ValueError as exc:
            raise Permanent(
                f"Prometheus at {self.url} did not answer JSON (HTTP {response.status_code})",
                hint="check the Prometheus URL",
            ) from exc
        if not isinstance(body, dict):
            raise Permanent("Prometheus answered JSON that is not an object")
        if body.get("status") != "success":
            kind = body.get("errorType", "error")
            message = body.get("error", "no message")
            if kind in ("bad_data", "execution") or response.status_code in (400, 422):
                raise ConfigError(
                    f"Prometheus rejected the query {promql!r}: {kind}: {message}",
                    hint="fix the analysis metric's query in kiln.yaml",
                )
            raise Temporary(f"Prometheus query failed: {kind}: {message}", delay=1.0)
        data = body.get("data")
        if not isinstance(data, dict):
            raise Permanent("Prometheus answered success without data")
        return data


def _labels(item: Any) -> dict[str, str]:
    metric = item.get("metric", {}) if isinstance(item, dict) else {}
    return {str(k): str(v) for k, v in metric.items()} if isinstance(metric, dict) else {}


def _point(pair: Any) -> tuple[float, float]:
    """Prometheus encodes a sample as ``[unix_time, "value"]`` (value as a string)."""
    try:
        when, value = pair
        return float(when), float(value)
    except (TypeError, ValueError) as exc:
        raise Permanent(f"Prometheus returned a malformed sample {pair!r}") from exc
