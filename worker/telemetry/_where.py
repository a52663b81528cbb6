"""Telling a person where an agent's trace and the worker's metrics are."""

from __future__ import annotations

from duragent.worker.telemetry._settings import TelemetrySettings, TracesExporter


def where_lines(
    settings: TelemetrySettings,
    agent_id: str,
    trace_id: str | None,
    *,
    metrics_url: str | None = None,
) -> list[str]:
    """A few lines: the trace id (and link), how to print the tree, the metrics URL.

    Args:
        settings: This process's telemetry settings (the link template, the exporter,
            the metrics port workers use by the same configuration).
        agent_id: The agent.
        trace_id: Its trace id, when it was started traced.
        metrics_url: The metrics endpoint when this process serves it (the demo).
    """
    tracing = settings.tracing
    if trace_id is None and not tracing.enabled:
        trace = (
            "trace:   not exported (set OTEL_EXPORTER_OTLP_ENDPOINT to send spans to a "
            "collector, or OTEL_TRACES_EXPORTER=console)"
        )
    elif trace_id is None:
        trace = "trace:   none (the agent was started by a client that does not trace)"
    else:
        trace = f"trace:   {trace_id}"
        link = tracing.link(trace_id)
        if link:
            trace += f"  {link}"
        elif tracing.exporter is TracesExporter.OTLP:
            trace += f"  (OTLP to {tracing.endpoint}; DURAGENT_TRACE_URL adds a link)"
        elif tracing.exporter is TracesExporter.CONSOLE:
            trace += "  (spans printed by each process as JSON)"
    lines = [trace, f"tree:    duragent trace {agent_id}  (from history, no collector needed)"]
    if metrics_url:
        lines.append(f"metrics: {metrics_url}")
    elif settings.metrics.port is None:
        lines.append("metrics: off in this environment (DURAGENT_METRICS_PORT=0)")
    else:
        port = settings.metrics.port
        lines.append(f"metrics: http://<worker>:{port}/metrics on each worker")
    return lines
