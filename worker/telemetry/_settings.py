"""Telemetry settings, read from the environment once, in the process entry point.

Tracing follows OpenTelemetry's standard variables, so a collector sidecar, an
operator's Helm values or a ``.env`` written for any other OpenTelemetry service work
unchanged. Metrics and the rest are duragent's own ``DURAGENT_*`` variables.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

DEFAULT_METRICS_PORT = 9464
"""The port OpenTelemetry assigns to Prometheus exporters; also duragent's."""
DEFAULT_OTLP_ENDPOINT = "http://localhost:4317"
TRUE = frozenset({"1", "true", "yes", "on"})

_E = TypeVar("_E", bound=StrEnum)


class TelemetrySettingsError(ValueError):
    """A telemetry variable has a value that cannot work; the message says which."""


class TracesExporter(StrEnum):
    """Where spans go (``OTEL_TRACES_EXPORTER``)."""

    OTLP = "otlp"
    CONSOLE = "console"
    NONE = "none"


class Sampler(StrEnum):
    """Head sampling (``OTEL_TRACES_SAMPLER``), the OpenTelemetry names."""

    ALWAYS_ON = "always_on"
    ALWAYS_OFF = "always_off"
    TRACE_ID_RATIO = "traceidratio"
    PARENT_BASED_ALWAYS_ON = "parentbased_always_on"
    PARENT_BASED_ALWAYS_OFF = "parentbased_always_off"
    PARENT_BASED_TRACE_ID_RATIO = "parentbased_traceidratio"


@dataclass(frozen=True)
class TracingSettings:
    """Where spans go and what they carry."""

    exporter: TracesExporter = TracesExporter.NONE
    """``OTEL_TRACES_EXPORTER``; when unset, ``otlp`` if an OTLP endpoint is set, else
    ``none``. ``OTEL_SDK_DISABLED=true`` forces ``none``."""
    endpoint: str = DEFAULT_OTLP_ENDPOINT
    """``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``: the
    collector's gRPC address, e.g. ``http://otel-collector:4317``."""
    insecure: bool | None = None
    """``OTEL_EXPORTER_OTLP_(TRACES_)INSECURE``; ``None`` lets the scheme decide
    (``http`` means no TLS)."""
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """``OTEL_EXPORTER_OTLP_(TRACES_)HEADERS``, e.g. an API key of a hosted backend."""
    service_name: str = "duragent"
    """``OTEL_SERVICE_NAME``."""
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    """``OTEL_RESOURCE_ATTRIBUTES``, e.g. ``deployment.environment=prod``."""
    sampler: Sampler = Sampler.PARENT_BASED_ALWAYS_ON
    """``OTEL_TRACES_SAMPLER``."""
    sampler_ratio: float = 1.0
    """``OTEL_TRACES_SAMPLER_ARG`` of the ratio samplers."""
    capture_content: bool = False
    """``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``: put prompts, completions,
    tool arguments and tool results on the spans. Off by default: they may hold
    anything a user or a tool wrote."""
    temporal_spans: bool = False
    """``DURAGENT_TRACE_TEMPORAL_SPANS``: add the SDK's own spans (StartWorkflow,
    RunActivity, ...) between duragent's."""
    trace_url: str | None = None
    """``DURAGENT_TRACE_URL``: a link to a trace in the team's viewer, with
    ``{trace_id}`` in it, e.g. ``http://localhost:16686/trace/{trace_id}`` (Jaeger)."""

    @property
    def enabled(self) -> bool:
        """True when spans are exported somewhere."""
        return self.exporter is not TracesExporter.NONE

    def link(self, trace_id: str) -> str | None:
        """The viewer's address of a trace, when ``trace_url`` is set."""
        return self.trace_url.replace("{trace_id}", trace_id) if self.trace_url else None


@dataclass(frozen=True)
class MetricsSettings:
    """The worker's Prometheus endpoint and the gauges it computes."""

    port: int | None = DEFAULT_METRICS_PORT
    """``DURAGENT_METRICS_PORT``; ``0`` (here ``None``) turns the endpoint off."""
    host: str = "0.0.0.0"
    """``DURAGENT_METRICS_HOST``: the address the endpoint listens on; every interface,
    so Prometheus can reach a worker in a container."""
    visibility_interval_seconds: float = 30.0
    """``DURAGENT_VISIBILITY_INTERVAL``: how often the worker counts agents by status in
    Temporal visibility (``0`` turns it off). A few cheap RPCs per refresh."""

    @property
    def enabled(self) -> bool:
        """True when the worker serves ``/metrics``."""
        return self.port is not None


@dataclass(frozen=True)
class TelemetrySettings:
    """Tracing and metrics of one process."""

    tracing: TracingSettings = TracingSettings()
    metrics: MetricsSettings = MetricsSettings()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TelemetrySettings:
        """Read the settings from an environment mapping (``os.environ`` in entry points).

        Raises:
            TelemetrySettingsError: A variable has a value that cannot work.
        """
        return cls(tracing=_tracing(env), metrics=_metrics(env))


def _tracing(env: Mapping[str, str]) -> TracingSettings:
    endpoint = _first(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    insecure = _first(env, "OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE")
    headers = _first(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
    return TracingSettings(
        exporter=_exporter(env, has_endpoint=endpoint is not None),
        endpoint=endpoint or DEFAULT_OTLP_ENDPOINT,
        insecure=None if insecure is None else insecure.lower() in TRUE,
        headers=_pairs("OTEL_EXPORTER_OTLP_HEADERS", headers or ""),
        service_name=env.get("OTEL_SERVICE_NAME") or "duragent",
        resource_attributes=_pairs(
            "OTEL_RESOURCE_ATTRIBUTES", env.get("OTEL_RESOURCE_ATTRIBUTES", "")
        ),
        sampler=_choice(env, "OTEL_TRACES_SAMPLER", Sampler, Sampler.PARENT_BASED_ALWAYS_ON),
        sampler_ratio=_ratio(env.get("OTEL_TRACES_SAMPLER_ARG")),
        capture_content=_flag(env, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"),
        temporal_spans=_flag(env, "DURAGENT_TRACE_TEMPORAL_SPANS"),
        trace_url=env.get("DURAGENT_TRACE_URL") or None,
    )


def _metrics(env: Mapping[str, str]) -> MetricsSettings:
    port = _number(env, "DURAGENT_METRICS_PORT", DEFAULT_METRICS_PORT, maximum=65535)
    if port != int(port):
        raise TelemetrySettingsError(f"DURAGENT_METRICS_PORT must be a whole number; got {port}")
    interval = _number(env, "DURAGENT_VISIBILITY_INTERVAL", 30, maximum=86400)
    return MetricsSettings(
        port=int(port) or None,
        host=env.get("DURAGENT_METRICS_HOST") or "0.0.0.0",
        visibility_interval_seconds=float(interval),
    )


def _exporter(env: Mapping[str, str], *, has_endpoint: bool) -> TracesExporter:
    if _flag(env, "OTEL_SDK_DISABLED"):
        return TracesExporter.NONE
    # The specification's default is otlp; duragent exports nothing until told where,
    # so a laptop without a collector does not log a failed export every few seconds.
    default = TracesExporter.OTLP if has_endpoint else TracesExporter.NONE
    return _choice(env, "OTEL_TRACES_EXPORTER", TracesExporter, default)


def _first(env: Mapping[str, str], *names: str) -> str | None:
    return next((env[n].strip() for n in names if env.get(n, "").strip()), None)


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in TRUE


def _choice(env: Mapping[str, str], name: str, kind: type[_E], default: _E) -> _E:
    text = env.get(name, "").strip().lower()
    if not text:
        return default
    # A list ("otlp,console") is allowed by the specification; the first one counts.
    text = text.split(",")[0].strip()
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(k.value for k in kind)
        raise TelemetrySettingsError(f"{name} must be one of {allowed}; got {text!r}") from None


def _pairs(name: str, text: str) -> dict[str, str]:
    """``key=value,key2=value2`` with URL-encoded values, as the specification writes it."""
    pairs: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TelemetrySettingsError(f"{name} must be key=value pairs; got {item!r}")
        pairs[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return pairs


def _ratio(text: str | None) -> float:
    if not text or not text.strip():
        return 1.0
    try:
        value = float(text)
    except ValueError:
        raise TelemetrySettingsError(
            f"OTEL_TRACES_SAMPLER_ARG must be a number; got {text!r}"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise TelemetrySettingsError(f"OTEL_TRACES_SAMPLER_ARG must be in [0, 1]; got {value}")
    return value


def _number(env: Mapping[str, str], name: str, default: float, *, maximum: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise TelemetrySettingsError(f"{name} must be a number; got {text!r}") from None
    if not 0 <= value <= maximum:
        raise TelemetrySettingsError(f"{name} must be between 0 and {maximum:g}; got {text}")
    return value
