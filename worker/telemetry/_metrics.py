"""The Temporal SDK's metrics, and duragent's, on the worker's Prometheus endpoint.

The SDK's Rust core records its worker metrics (task slots, pollers, schedule-to-start
and poll latencies, ...) and everything recorded through ``workflow.metric_meter()`` and
``activity.metric_meter()`` into a ``MetricBuffer``. :class:`SdkMetricsCollector`
drains that buffer into Prometheus families, so one endpoint serves both, with one
bucket layout and Prometheus' naming: counters get ``_total``, histograms of seconds
get ``_seconds``, exactly as the SDK's own Prometheus exporter names them with
``counters_total_suffix`` and ``durations_as_seconds``. (That exporter would need a
second port and cannot serve a health path; hence this bridge.)

Drained on every scrape, so a scrape sees what happened up to that moment, and every
second by the worker, so the buffer never fills between scrapes.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    BufferedMetric,
    BufferedMetricUpdate,
    MetricBuffer,
)

BUFFER_SIZE = 100_000
"""Updates the SDK keeps between drains; a second of a very busy worker fits."""

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0
)  # fmt: skip
"""Seconds: from a cache hit in a tool to a ten-minute LLM completion."""

LabelKey = tuple[tuple[str, str], ...]
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")


@dataclass
class _Histogram:
    counts: list[int]
    total: float = 0.0
    count: int = 0


@dataclass
class _Family:
    name: str
    kind: int
    documentation: str
    values: dict[LabelKey, float] = field(default_factory=dict)
    histograms: dict[LabelKey, _Histogram] = field(default_factory=dict)


class SdkMetricsCollector(Collector):
    """Prometheus collector of the metrics the SDK buffers.

    Args:
        buffer: The buffer on the worker's ``Runtime`` telemetry configuration, in
            ``MetricBufferDurationFormat.SECONDS``.
        buckets: Upper bounds of histogram buckets, in seconds.
    """

    def __init__(self, buffer: MetricBuffer, *, buckets: Sequence[float] = DEFAULT_BUCKETS):
        self._buffer = buffer
        self._buckets = tuple(sorted(buckets))
        # The HTTP server's thread scrapes while the worker's loop drains.
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}
        # The SDK hands out the same metric and attribute objects for the same series;
        # caching by id() saves converting them on every update. The objects are kept
        # alongside, so an id is never reused while cached.
        self._by_metric: dict[int, tuple[BufferedMetric, _Family]] = {}
        self._by_attributes: dict[int, tuple[object, LabelKey]] = {}

    def drain(self) -> None:
        """Apply every update the SDK buffered since the last drain."""
        with self._lock:
            for update in self._buffer.retrieve_updates():
                self._apply(update)

    def collect(self) -> Iterable[Metric]:
        """Drain, then return the families in Prometheus form."""
        self.drain()
        with self._lock:
            return [self._render(f) for f in sorted(self._families.values(), key=_name)]

    def _apply(self, update: BufferedMetricUpdate) -> None:
        family = self._family(update.metric)
        key = self._label_key(update.attributes)
        value = float(update.value)
        if family.kind == BUFFERED_METRIC_KIND_COUNTER:
            family.values[key] = family.values.get(key, 0.0) + value
        elif family.kind == BUFFERED_METRIC_KIND_GAUGE:
            family.values[key] = value
        else:
            histogram = family.histograms.get(key)
            if histogram is None:
                histogram = family.histograms[key] = _Histogram([0] * (len(self._buckets) + 1))
            histogram.counts[bisect.bisect_left(self._buckets, value)] += 1
            histogram.total += value
            histogram.count += 1

    def _family(self, metric: BufferedMetric) -> _Family:
        cached = self._by_metric.get(id(metric))
        if cached is not None:
            return cached[1]
        name = exposed_name(metric.name, metric.kind, metric.unit)
        family = self._families.get(name)
        if family is None:
            documentation = metric.description or metric.name
            family = self._families[name] = _Family(name, metric.kind, documentation)
        self._by_metric[id(metric)] = (metric, family)
        return family

    def _label_key(self, attributes: Mapping[str, object]) -> LabelKey:
        cached = self._by_attributes.get(id(attributes))
        if cached is not None:
            return cached[1]
        key = tuple(sorted((_label_name(k), _label_value(v)) for k, v in attributes.items()))
        self._by_attributes[id(attributes)] = (attributes, key)
        return key

    def _render(self, family: _Family) -> Metric:
        if family.kind == BUFFERED_METRIC_KIND_COUNTER:
            counter = CounterMetricFamily(family.name, family.documentation)
            for key, value in family.values.items():
                counter.add_sample(f"{counter.name}_total", dict(key), value)
            return counter
        if family.kind == BUFFERED_METRIC_KIND_GAUGE:
            gauge = GaugeMetricFamily(family.name, family.documentation)
            for key, value in family.values.items():
                gauge.add_sample(family.name, dict(key), value)
            return gauge
        histogram = HistogramMetricFamily(family.name, family.documentation)
        for key, state in family.histograms.items():
            labels = dict(key)
            cumulative = 0
            for bound, count in zip((*self._buckets, math.inf), state.counts, strict=True):
                cumulative += count
                le = floatToGoString(bound)  # type: ignore[no-untyped-call]
                histogram.add_sample(f"{family.name}_bucket", labels | {"le": le}, cumulative)
            histogram.add_sample(f"{family.name}_count", labels, state.count)
            histogram.add_sample(f"{family.name}_sum", labels, state.total)
        return histogram


def exposed_name(name: str, kind: int, unit: str | None) -> str:
    """The Prometheus family name of an SDK metric (the ``_total`` comes with the sample).

    Args:
        name: The metric's name in the SDK, e.g. ``temporal_request_latency``.
        kind: One of the ``BUFFERED_METRIC_KIND_*`` constants.
        unit: The SDK's unit; ``s`` for durations in seconds.
    """
    if kind == BUFFERED_METRIC_KIND_COUNTER:
        return name.removesuffix("_total")
    if unit == "s" and not name.endswith("_seconds"):
        return f"{name}_seconds"
    return name


def _name(family: _Family) -> str:
    return family.name


def _label_name(key: str) -> str:
    name = _INVALID_LABEL.sub("_", key)
    return f"_{name}" if name[:1].isdigit() else name


def _label_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
