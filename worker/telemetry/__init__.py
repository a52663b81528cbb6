"""Tracing and metrics of duragent processes.

One trace per agent: ``agent <id>`` (the client call that starts it) → ``cycle N`` (the
workflow, replay-safe) → ``chat <model>`` and ``execute_tool <name>`` (the activities,
with the OpenTelemetry GenAI attributes). The SDK's ``OpenTelemetryPlugin`` carries the
context across the client, workflow and activities, worker restarts and
continue-as-new. Metrics: duragent's own and the Temporal SDK's, on the worker's
Prometheus endpoint. See the README's "Observability" section for what is where.

Use: build one :class:`Telemetry` in the process entry point from
:meth:`TelemetrySettings.from_env`, pass it to ``worker.client.connect``, run the worker
inside :meth:`Telemetry.serve`, and call :meth:`Telemetry.shutdown` at exit.
"""

from duragent.worker.telemetry._history import (
    TraceNode,
    build_tree,
    history_trace,
    render_tree,
    trace_id_of,
)
from duragent.worker.telemetry._interceptor import TelemetryInterceptor, TelemetryOptions
from duragent.worker.telemetry._metrics import SdkMetricsCollector
from duragent.worker.telemetry._server import MetricsServer
from duragent.worker.telemetry._settings import (
    MetricsSettings,
    TelemetrySettings,
    TelemetrySettingsError,
    TracesExporter,
    TracingSettings,
)
from duragent.worker.telemetry._telemetry import (
    MetricsUnavailable,
    Telemetry,
    TelemetryPlugin,
    install_tracer_provider,
)
from duragent.worker.telemetry._tracing import (
    agent_span,
    build_tracer_provider,
    trace_id_from_start_event,
)
from duragent.worker.telemetry._where import where_lines

__all__ = [
    "MetricsServer",
    "MetricsSettings",
    "MetricsUnavailable",
    "SdkMetricsCollector",
    "Telemetry",
    "TelemetryInterceptor",
    "TelemetryOptions",
    "TelemetryPlugin",
    "TelemetrySettings",
    "TelemetrySettingsError",
    "TraceNode",
    "TracesExporter",
    "TracingSettings",
    "agent_span",
    "build_tracer_provider",
    "build_tree",
    "history_trace",
    "install_tracer_provider",
    "render_tree",
    "trace_id_from_start_event",
    "trace_id_of",
    "where_lines",
]
