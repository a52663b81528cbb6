"""Telemetry settings from the standard OTEL_* variables and duragent's own; pure functions."""

from __future__ import annotations

import pytest
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    BUFFERED_METRIC_KIND_HISTOGRAM,
)

from duragent.worker.telemetry import (
    TelemetrySettings,
    TelemetrySettingsError,
    TracesExporter,
    TracingSettings,
    build_tracer_provider,
    install_tracer_provider,
)
from duragent.worker.telemetry._metrics import exposed_name
from duragent.worker.telemetry._settings import Sampler
from tests.observability_support import (
    isolated_global_tracer_provider,
    promql_metrics,
    promql_selectors,
)


def test_nothing_is_exported_until_told_where() -> None:
    settings = TelemetrySettings.from_env({})
    assert settings.tracing.exporter is TracesExporter.NONE
    assert not settings.tracing.capture_content
    assert settings.metrics.port == 9464
    assert build_tracer_provider(settings.tracing) is None


def test_an_otlp_endpoint_turns_export_on() -> None:
    tracing = TelemetrySettings.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
            "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s%3Dcret, team=agents",
            "OTEL_SERVICE_NAME": "agents-prod",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
        }
    ).tracing
    assert tracing.exporter is TracesExporter.OTLP
    assert tracing.endpoint == "http://collector:4317"
    assert dict(tracing.headers) == {"api-key": "s=cret", "team": "agents"}
    assert tracing.service_name == "agents-prod"
    assert dict(tracing.resource_attributes) == {"deployment.environment": "prod"}
    assert (tracing.sampler, tracing.sampler_ratio) == (Sampler.PARENT_BASED_TRACE_ID_RATIO, 0.25)
    assert tracing.capture_content


def test_the_traces_endpoint_wins_and_the_sdk_switch_turns_all_off() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4317",
    }
    assert TelemetrySettings.from_env(env).tracing.endpoint == "http://b:4317"
    off = TelemetrySettings.from_env({**env, "OTEL_SDK_DISABLED": "true"})
    assert off.tracing.exporter is TracesExporter.NONE
    console = TelemetrySettings.from_env({"OTEL_TRACES_EXPORTER": "console,otlp"})
    assert console.tracing.exporter is TracesExporter.CONSOLE


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER must be one of otlp"),
        ({"OTEL_TRACES_SAMPLER_ARG": "2"}, "must be in [0, 1]"),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "key=value pairs"),
        ({"DURAGENT_METRICS_PORT": "http"}, "DURAGENT_METRICS_PORT must be a number"),
        ({"DURAGENT_METRICS_PORT": "70000"}, "between 0 and 65535"),
        ({"DURAGENT_METRICS_PORT": "94.5"}, "whole number"),
    ],
)
def test_a_bad_value_is_one_clear_error(env: dict[str, str], says: str) -> None:
    with pytest.raises(TelemetrySettingsError, match=says.replace("[", r"\[")):
        TelemetrySettings.from_env(env)


def test_metrics_port_zero_turns_the_endpoint_off() -> None:
    metrics = TelemetrySettings.from_env({"DURAGENT_METRICS_PORT": "0"}).metrics
    assert metrics.port is None and not metrics.enabled


def test_a_trace_link_fills_the_template() -> None:
    tracing = TracingSettings(trace_url="http://jaeger:16686/trace/{trace_id}")
    assert tracing.link("ab" * 16) == f"http://jaeger:16686/trace/{'ab' * 16}"
    assert TracingSettings().link("ab" * 16) is None


def test_a_second_tracer_provider_is_refused() -> None:
    settings = TracingSettings(exporter=TracesExporter.CONSOLE)
    first, second = build_tracer_provider(settings), build_tracer_provider(settings)
    assert first is not None and second is not None
    try:
        with isolated_global_tracer_provider():
            install_tracer_provider(first)
            install_tracer_provider(first)  # the same one again is fine
            with pytest.raises(TelemetrySettingsError, match="already installed"):
                install_tracer_provider(second)
    finally:
        first.shutdown()
        second.shutdown()


COUNTER, GAUGE, HISTOGRAM = (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    BUFFERED_METRIC_KIND_HISTOGRAM,
)


@pytest.mark.parametrize(
    ("name", "kind", "unit", "exposed"),
    [
        ("temporal_request", COUNTER, None, "temporal_request"),
        ("temporal_request_latency", HISTOGRAM, "s", "temporal_request_latency_seconds"),
        (
            "duragent_tool_call_duration_seconds",
            HISTOGRAM,
            "s",
            "duragent_tool_call_duration_seconds",
        ),
        ("temporal_num_pollers", GAUGE, None, "temporal_num_pollers"),
    ],
)
def test_sdk_metrics_get_prometheus_names(
    name: str, kind: int, unit: str | None, exposed: str
) -> None:
    assert exposed_name(name, kind, unit) == exposed


def test_metric_names_are_read_out_of_promql() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, model) (rate(duragent_llm_request_duration"
        '_seconds_bucket{outcome="success", task_queue=~"$task_queue"}[$__rate_interval])))'
        ' / ignoring (x) absent(up{job="w"} == 1) offset 5m'
    )
    assert promql_metrics(expr) == {"duragent_llm_request_duration_seconds_bucket", "up"}
    assert promql_selectors(expr) == [
        ("duragent_llm_request_duration_seconds_bucket", {"outcome", "task_queue"}),
        ("up", {"job"}),
    ]
