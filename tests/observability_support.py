"""Real observability back ends for tests: an OTLP/gRPC receiver and a Prometheus server.

The receiver implements ``opentelemetry.proto.collector.trace.v1.TraceService/Export``
with grpcio and the OTLP protobufs, exactly what a collector listens on, so the worker's
exporter runs unchanged. Prometheus is the real server (Debian package ``prometheus``,
installed by ``scripts/bootstrap.sh``), started on a free loopback port with a generated
configuration that scrapes the worker, and queried over its HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from temporalio.client import WorkflowHandle

from duragent.worker.client import connect, start_agent
from duragent.worker.devserver import DevServer, free_port
from duragent.worker.scripted_llm import ScriptedLLMServer
from duragent.worker.telemetry import MetricsServer, MetricsSettings, Telemetry, TelemetrySettings
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import (
    ActivityPolicy,
    AgentInput,
    AgentResult,
    AgentStatus,
    HistoryPolicy,
    MemoryPolicy,
)
from tests.conftest import Harness, eventually
from tests.test_agent import finish
from tests.test_long_runs import TOOLS, summary_script, tick_step


@dataclass(frozen=True)
class ReceivedSpan:
    """A span as it arrived over OTLP."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    attributes: dict[str, Any]
    status_code: int
    service: str
    start_ns: int
    end_ns: int
    events: tuple[str, ...] = field(default=())

    def key(self) -> tuple[str, str, str]:
        """What makes two spans the same span: its name, parent and attributes."""
        return (self.name, self.parent_id, json.dumps(self.attributes, sort_keys=True))


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: OTLPReceiver) -> None:
        self._sink = sink

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._sink.receive(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class OTLPReceiver:
    """An in-process OTLP/gRPC trace receiver on a free loopback port."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=4)
        self._server = grpc.server(self._executor)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _TraceService(self), self._server
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        """What ``OTEL_EXPORTER_OTLP_ENDPOINT`` would say."""
        return f"http://127.0.0.1:{self.port}"

    def receive(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        """Keep the spans of one export request."""
        received: list[ReceivedSpan] = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    received.append(
                        ReceivedSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            status_code=span.status.code,
                            service=str(resource.get("service.name", "")),
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            events=tuple(e.name for e in span.events),
                        )
                    )
        with self._lock:
            self.spans.extend(received)

    def snapshot(self) -> list[ReceivedSpan]:
        """The spans received so far."""
        with self._lock:
            return list(self.spans)

    def __enter__(self) -> OTLPReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None).wait()
        self._executor.shutdown(wait=True)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


@contextmanager
def isolated_global_tracer_provider() -> Iterator[None]:
    """Let a test install the process-global tracer provider, and forget it after.

    The SDK's OpenTelemetry interceptor reads the global provider, and OpenTelemetry
    lets a process set it only once; a test session needs it once per test. Resetting
    OpenTelemetry's private guard is what the SDK's own tests and OpenTelemetry's do.
    """
    try:
        yield
    finally:
        trace._TRACER_PROVIDER_SET_ONCE._done = False
        trace._TRACER_PROVIDER = None


# --- Prometheus --------------------------------------------------------------------


def prometheus_binary() -> str | None:
    """The ``prometheus`` server binary, if installed."""
    return shutil.which("prometheus")


class Prometheus:
    """A real Prometheus server scraping one target every half second.

    Args:
        target: ``host:port`` of the worker's metrics endpoint.
        binary: The ``prometheus`` executable.
    """

    def __init__(self, target: str, binary: str) -> None:
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="duragent-prometheus-")
        config = Path(self._dir.name) / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 500ms\n  evaluation_interval: 500ms\n"
            "scrape_configs:\n"
            "  - job_name: duragent-worker\n"
            f"    static_configs:\n      - targets: ['{target}']\n",
            encoding="utf-8",
        )
        self._log = (Path(self._dir.name) / "prometheus.log").open("wb")
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={Path(self._dir.name) / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=self._log,
        )

    @property
    def url(self) -> str:
        """The server's HTTP address."""
        return f"http://127.0.0.1:{self.port}"

    async def ready(self, within: float = 30.0) -> None:
        """Wait until the server answers its readiness endpoint."""

        async def answers() -> bool:
            if self._process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log()}")
            try:
                return await asyncio.to_thread(_get, f"{self.url}/-/ready") is not None
            except OSError:
                return False

        await eventually(answers, within=within, interval=0.1)

    async def query(self, promql: str) -> list[dict[str, Any]]:
        """Run an instant PromQL query through the HTTP API; the result vector."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        body = await asyncio.to_thread(_get, url)
        answer = json.loads(body or b"{}")
        assert answer.get("status") == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def log(self) -> str:
        """What the server wrote."""
        return (Path(self._dir.name) / "prometheus.log").read_text(errors="replace")

    def close(self) -> None:
        """Stop the server and remove its data."""
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()
        self._dir.cleanup()


def _get(url: str) -> bytes | None:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body if response.status == 200 else None


# --- a worker with metrics, and a run that exercises them -----------------------------


@asynccontextmanager
async def metered_harness(
    temporal: DevServer, llm: ScriptedLLMServer, workspace: Path
) -> AsyncIterator[tuple[Harness, MetricsServer]]:
    """A harness whose worker serves ``/metrics`` on a free loopback port.

    The client gets its own SDK runtime, whose metrics the endpoint serves, exactly as
    the ``duragent worker`` entry point builds it; the visibility gauges refresh twice a
    second so a test sees them move.
    """
    settings = TelemetrySettings(
        metrics=MetricsSettings(port=0, host="127.0.0.1", visibility_interval_seconds=0.5)
    )
    telemetry = Telemetry(settings, metrics=True, llm_base_url=llm.base_url)
    client = await connect({"TEMPORAL_ADDRESS": temporal.address}, telemetry=telemetry)
    harness = Harness(client=client, llm=llm, workspace=workspace)
    async with (
        harness.worker(tools=TOOLS) as worker,
        telemetry.serve(client, harness.task_queue, live=lambda: worker.is_running) as server,
    ):
        assert server is not None
        yield harness, server


@dataclass
class Scenario:
    """The agents of the scenario.

    ``finished`` took three cycles (an LLM 500 retried, a tool error); ``long`` ticked
    through a compaction and a continue-as-new; ``waiting`` waits for a reply.
    """

    finished: WorkflowHandle[Any, Any]
    long: WorkflowHandle[Any, Any]
    waiting: WorkflowHandle[Any, Any]
    results: list[AgentResult]
    """Of ``finished`` and ``long``."""


def long_run_script(h: Harness) -> str:
    """Ticks until tick 12; compacts (on the model's request) after tick 3."""
    summary_script(h)
    compress = {"tool_calls": [{"name": "_compress_memory", "arguments": {"reason": "test"}}]}
    return h.script(
        [tick_step()],
        rules=[
            {"when_last": r"^tick 3$", "step": compress},
            {"when_last": r"^tick 12$", "step": finish("ticked")},
        ],
    )


def long_run_input(task: str) -> AgentInput:
    """Continue-as-new every ~8 cycles; compaction keeps one turn, so it summarises."""
    return AgentInput(
        task=task,
        model="scripted",
        history=HistoryPolicy(max_events=100),
        memory=MemoryPolicy(keep_recent_turns=1),
    )


async def run_scenario(h: Harness) -> Scenario:
    """Run the scenario's agents on ``h``'s worker (which must offer ``TOOLS``)."""
    task = h.script(
        [
            {
                "faults": [{"status": 500}],
                "tool_calls": [{"name": "_write_file", "arguments": {"path": "a", "content": "A"}}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 10},
            },
            {
                "tool_calls": [{"name": "_read_file", "arguments": {"path": "missing.txt"}}],
                "usage": {"prompt_tokens": 200, "completion_tokens": 20},
            },
            {
                "tool_calls": [{"name": "_task_finish", "arguments": {"message": "done"}}],
                "usage": {"prompt_tokens": 300, "completion_tokens": 30},
            },
        ]
    )
    policy = ActivityPolicy(initial_interval_seconds=0.1)
    input = AgentInput(task=task, model="scripted", llm_policy=policy)
    finished = await start_agent(h.client, input, task_queue=h.task_queue)
    result = await finished.result()
    # The long run gets its own marker: one script per marker.
    other = Harness(client=h.client, llm=h.llm, workspace=h.workspace, task_queue=h.task_queue)
    long = await start_agent(
        h.client, long_run_input(long_run_script(other)), task_queue=h.task_queue
    )
    long_result = await long.result()
    marker = f"[ask {uuid.uuid4().hex[:10]}]"
    ask = {
        "tool_calls": [{"name": "_ask_user", "arguments": {"question": "Go?"}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 5},
    }
    done = {"tool_calls": [{"name": "_task_finish", "arguments": {"message": "done"}}]}
    h.llm.add_script({"name": marker, "match": marker, "steps": [ask, done]})
    waiting = await start_agent(
        h.client, AgentInput(task=f"{marker} ask", model="scripted"), task_queue=h.task_queue
    )
    await eventually(lambda: _waiting(waiting))
    return Scenario(finished, long, waiting, [result, long_result])


async def _waiting(handle: WorkflowHandle[Any, Any]) -> bool:
    view = await handle.query(AgentWorkflow.status)
    return bool(view.status is AgentStatus.WAITING_USER)


async def scrape(server: MetricsServer, path: str = "/metrics") -> tuple[int, str]:
    """GET a path of the worker's endpoint: status and body."""
    url = f"http://127.0.0.1:{server.port}{path}"

    def get() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    return await asyncio.to_thread(get)


# --- what PromQL in the dashboard and the rules asks for ---------------------------

_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:$.])[A-Za-z_:][\w:]*")
_SELECTOR = re.compile(r"(?<![\w:$.])([A-Za-z_:][\w:]*)\s*\{([^{}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)\s*[\"']")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})


def promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = _GROUPING.sub(" ", _RANGES.sub(" ", _MATCHERS.sub(" ", _strip_strings(expr))))
    names = set()
    for match in _IDENTIFIER.finditer(text):
        follows = text[match.end() :].lstrip()
        if not follows.startswith("(") and match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


def promql_selectors(expr: str) -> list[tuple[str, set[str]]]:
    """Each ``metric{...}`` of an expression with the label names it matches on."""
    return [(m.group(1), set(_MATCHER_LABEL.findall(m.group(2)))) for m in _SELECTOR.finditer(expr)]


def _strip_strings(expr: str) -> str:
    return _STRINGS.sub('""', expr)
