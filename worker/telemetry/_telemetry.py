"""One process's telemetry: built once in the entry point, handed to ``connect``.

:class:`Telemetry` owns the tracer provider, the SDK runtime whose metrics it buffers,
and the Prometheus registry; :class:`TelemetryPlugin` carries it on the client, so the
workers made from that client, and the CLI commands that use it, find it there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Self

from opentelemetry import trace
from opentelemetry.trace import Tracer
from prometheus_client.registry import CollectorRegistry
from temporalio.client import Client
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin, ReplaySafeTracerProvider
from temporalio.plugin import SimplePlugin
from temporalio.runtime import MetricBuffer, MetricBufferDurationFormat, Runtime, TelemetryConfig

from duragent.worker.telemetry._interceptor import TelemetryInterceptor, TelemetryOptions
from duragent.worker.telemetry._metrics import BUFFER_SIZE, SdkMetricsCollector
from duragent.worker.telemetry._server import Check, MetricsServer
from duragent.worker.telemetry._settings import TelemetrySettings, TelemetrySettingsError
from duragent.worker.telemetry._tracing import TRACER_NAME, build_tracer_provider
from duragent.worker.telemetry._visibility import AgentGauges

log = logging.getLogger("duragent.telemetry")

PLUGIN_NAME = "duragent.telemetry"
DRAIN_INTERVAL = 1.0  # seconds between drains of the SDK's metric buffer


class MetricsUnavailable(TelemetrySettingsError):
    """The metrics endpoint cannot listen where it was told to."""


class Telemetry:
    """Tracing and metrics of one process.

    With tracing on, the replay-safe tracer provider becomes the process's global one:
    the SDK's OpenTelemetry interceptor and the workflow's spans look it up there
    (OpenTelemetry lets a process set it once). With ``metrics=True`` and a metrics
    port, SDK metrics are buffered for the ``/metrics`` endpoint of :meth:`serve`.

    Args:
        settings: What to export and where.
        metrics: Collect metrics (a worker does; a CLI command that only starts or
            queries agents does not).
        llm_base_url: The LLM endpoint, named on LLM spans.
    """

    def __init__(
        self, settings: TelemetrySettings, *, metrics: bool = False, llm_base_url: str | None = None
    ) -> None:
        self.settings = settings
        self.tracer_provider: ReplaySafeTracerProvider | None = build_tracer_provider(
            settings.tracing
        )
        if self.tracer_provider is not None:
            install_tracer_provider(self.tracer_provider)
        self.options = TelemetryOptions(
            tracer_provider=self.tracer_provider,
            capture_content=settings.tracing.capture_content,
            llm_base_url=llm_base_url,
        )
        self.runtime: Runtime | None = None
        self.registry: CollectorRegistry | None = None
        self._gauges: AgentGauges | None = None
        self._collector: SdkMetricsCollector | None = None
        if metrics and settings.metrics.enabled:
            buffer = MetricBuffer(BUFFER_SIZE, MetricBufferDurationFormat.SECONDS)
            self.runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
            self.registry = CollectorRegistry()
            self._collector = SdkMetricsCollector(buffer)
            self.registry.register(self._collector)
            self._gauges = AgentGauges(self.registry)

    @staticmethod
    def of(client: Client) -> Telemetry | None:
        """The telemetry a client was connected with, if any."""
        for plugin in client.config()["plugins"]:
            if isinstance(plugin, TelemetryPlugin):
                return plugin.telemetry
        return None

    def plugins(self) -> list[SimplePlugin]:
        """The client plugins: the SDK's OpenTelemetry plugin (when tracing), then ours.

        The order makes the SDK's interceptor the outer one, so the trace context is
        attached before duragent's spans start.
        """
        plugins: list[SimplePlugin] = []
        if self.tracer_provider is not None:
            plugins.append(
                OpenTelemetryPlugin(add_temporal_spans=self.settings.tracing.temporal_spans)
            )
        plugins.append(TelemetryPlugin(self))
        return plugins

    def tracer(self) -> Tracer:
        """The tracer of client-side spans (a no-op one when tracing is off)."""
        if self.tracer_provider is None:
            return trace.NoOpTracer()
        return self.tracer_provider.get_tracer(TRACER_NAME)

    @contextlib.asynccontextmanager
    async def serve(
        self,
        client: Client,
        task_queue: str,
        *,
        live: Check | None = None,
        ready: Check | None = None,
    ) -> AsyncIterator[MetricsServer | None]:
        """Serve ``/metrics``, ``/healthz`` and ``/readyz`` while the block runs.

        Also drains the SDK's metric buffer and refreshes the visibility gauges of
        ``task_queue``. Yields ``None`` when metrics are off.

        Raises:
            MetricsUnavailable: The port is taken.
        """
        if self.registry is None or self._collector is None or self._gauges is None:
            yield None
            return
        metrics = self.settings.metrics
        try:
            server = MetricsServer(
                self.registry, host=metrics.host, port=metrics.port or 0, live=live, ready=ready
            )
        except OSError as err:
            raise MetricsUnavailable(
                f"cannot serve metrics on {metrics.host}:{metrics.port} ({err.strerror}); "
                "set DURAGENT_METRICS_PORT to a free port, or 0 to turn metrics off"
            ) from err
        tasks = [asyncio.create_task(_every(DRAIN_INTERVAL, self._collector.drain))]
        if metrics.visibility_interval_seconds > 0:
            gauges = self._gauges.run(client, task_queue, metrics.visibility_interval_seconds)
            tasks.append(asyncio.create_task(gauges))
        try:
            yield server
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            server.close()
            self._collector.drain()

    def shutdown(self) -> None:
        """Export the spans still buffered and stop the exporter."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class TelemetryPlugin(SimplePlugin):
    """duragent's interceptor on a client's workers; carries the process's telemetry.

    Args:
        telemetry: The process's telemetry.
    """

    def __init__(self, telemetry: Telemetry) -> None:
        super().__init__(PLUGIN_NAME, interceptors=[TelemetryInterceptor(telemetry.options)])
        self.telemetry = telemetry


def install_tracer_provider(provider: ReplaySafeTracerProvider) -> None:
    """Make ``provider`` the process's global tracer provider.

    The SDK's OpenTelemetry interceptor requires it there. OpenTelemetry ignores a
    second provider with only a log line, and the workflows would then trace into the
    first one: refuse loudly instead.

    Raises:
        TelemetrySettingsError: Another provider is installed already (another
            ``Telemetry`` in this process, or an auto-instrumentation agent).
    """
    current = trace.get_tracer_provider()
    if current is provider:
        return
    if not isinstance(current, trace.ProxyTracerProvider):
        raise TelemetrySettingsError(
            f"a tracer provider ({type(current).__name__}) is already installed in this "
            "process; duragent needs its own replay-safe one: build one Telemetry per "
            "process, and run without opentelemetry-instrument"
        )
    trace.set_tracer_provider(provider)


async def _every(seconds: float, action: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(seconds)  # the drain period, not a wait for an event
        try:
            action()
        except Exception:
            log.exception("draining the SDK's metrics failed")
