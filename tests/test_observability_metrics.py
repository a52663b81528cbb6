"""The worker's /metrics, scraped by a real Prometheus and queried with PromQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from duragent.worker.devserver import DevServer
from duragent.worker.scripted_llm import ScriptedLLMServer
from duragent.worker.telemetry import MetricsServer
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import AgentStatus, ReplyInput
from tests.conftest import eventually
from tests.observability_support import (
    Prometheus,
    Scenario,
    metered_harness,
    prometheus_binary,
    promql_metrics,
    promql_selectors,
    run_scenario,
    scrape,
)

DEPLOY = Path(__file__).parent.parent / "deploy"
NO_PROMETHEUS = (
    "the Prometheus server is not installed: `make test` installs the Debian package "
    "`prometheus` through scripts/bootstrap.sh where apt-get runs as root; install it "
    "(apt-get install prometheus) to run this test"
)


@pytest.fixture
def prometheus_path() -> str:
    path = prometheus_binary()
    if path is None:
        pytest.skip(NO_PROMETHEUS)
    return path


@pytest.fixture(scope="module")
async def observed(
    temporal: DevServer, llm: ScriptedLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Scenario, MetricsServer, str]]:
    """The scenario run once on a metered worker, its endpoint, and the queue's name."""
    workspace = tmp_path_factory.mktemp("observed") / "workspace"
    async with metered_harness(temporal, llm, workspace) as (h, server):
        scenario = await run_scenario(h)
        yield scenario, server, h.task_queue
        # Let the waiting agent finish, so the session's server keeps no open run.
        _ = await scenario.waiting.execute_update(AgentWorkflow.reply, ReplyInput(answer="no"))
        await scenario.waiting.result()


@pytest.fixture
def prometheus(
    observed: tuple[Scenario, MetricsServer, str], prometheus_path: str
) -> Iterator[Prometheus]:
    _, server, _ = observed
    instance = Prometheus(f"127.0.0.1:{server.port}", prometheus_path)
    try:
        yield instance
    finally:
        instance.close()


def value(result: list[dict[str, Any]]) -> float | None:
    """The single sample of an instant vector, or None when empty."""
    return float(result[0]["value"][1]) if len(result) == 1 else None


async def test_prometheus_scrapes_the_run(
    observed: tuple[Scenario, MetricsServer, str], prometheus: Prometheus
) -> None:
    scenario, _, queue = observed
    finished, long = scenario.results
    assert finished.status is AgentStatus.COMPLETED and long.status is AgentStatus.COMPLETED
    assert long.runs >= 2 and long.compactions >= 1, "the long run continued as new, compacted"
    waiting = await scenario.waiting.query(AgentWorkflow.usage)
    tokens = finished.usage + long.usage + waiting.total
    cycles = finished.cycles + long.cycles + waiting.cycles
    await prometheus.ready()
    q = f'task_queue="{queue}"'
    expected = {
        "up": 1,
        f"sum(duragent_agent_runs_started_total{{{q}}})": 3,
        f'sum(duragent_agent_runs_finished_total{{{q},status="completed"}})': 2,
        f"sum(duragent_cycles_total{{{q}}})": cycles,
        f"sum(duragent_continue_as_new_total{{{q}}})": long.runs - 1,
        f"sum(duragent_compactions_total{{{q}}})": long.compactions,
        f'sum(duragent_llm_requests_total{{{q},purpose="cycle",outcome="success"}})': cycles,
        f'sum(duragent_llm_errors_total{{{q},error_type="LLMServerError"}})': 1,
        f'sum(duragent_llm_tokens_total{{{q},model="scripted",type="input"}})': tokens.input_tokens,
        f'sum(duragent_llm_tokens_total{{{q},type="output"}})': tokens.output_tokens,
        f'sum(duragent_llm_request_duration_seconds_count{{{q},purpose="cycle"}})': cycles + 1,
        f'sum(duragent_tool_calls_total{{{q},tool="_write_file",status="success"}})': 1,
        f'sum(duragent_tool_calls_total{{{q},tool="_read_file",status="error"}})': 1,
        f'sum(duragent_tool_call_duration_seconds_count{{{q},tool="_read_file"}})': 1,
        f'duragent_agents{{{q},status="waiting_user"}}': 1,
        f'duragent_agents{{{q},status="running"}}': 0,
        f'duragent_agents{{{q},status="waiting_approval"}}': 0,
        f'duragent_graphs{{{q},status="waiting_user"}}': 0,
        f'duragent_graphs{{{q},status="running"}}': 0,
    }
    answers: dict[str, float | None] = {}

    async def all_there() -> bool:
        for promql in expected:
            answers[promql] = value(await prometheus.query(promql))
        return answers == expected

    try:
        await eventually(all_there, within=30, interval=0.25)
    except AssertionError:
        wrong = {k: (answers.get(k), v) for k, v in expected.items() if answers.get(k) != v}
        raise AssertionError(f"PromQL (got, expected): {wrong}") from None

    # The compaction's summary is an LLM call too; a waiting agent has waited a while;
    # the SDK's own worker metrics are there.
    summaries = f'sum(duragent_llm_requests_total{{{q},purpose="compaction"}})'
    assert (value(await prometheus.query(summaries)) or 0) >= 1
    waited = f'duragent_agent_oldest_wait_seconds{{{q},status="waiting_user"}}'
    assert (value(await prometheus.query(waited)) or 0) > 0
    for promql in (
        f'temporal_worker_task_slots_available{{{q},worker_type="WorkflowWorker"}}',
        f"sum(temporal_workflow_task_schedule_to_start_latency_seconds_count{{{q}}})",
        f'sum(temporal_long_request_latency_seconds_count{{{q},operation="PollWorkflowTaskQueue"}})',
    ):
        assert await prometheus.query(promql), f"no samples for {promql}"


async def test_exposition_follows_prometheus_conventions(
    observed: tuple[Scenario, MetricsServer, str],
) -> None:
    _, server, _ = observed
    status, text = await scrape(server)
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    ours = {name: f for name, f in families.items() if name.startswith("duragent_")}
    assert ours, "no duragent metrics exposed"
    for name, family in ours.items():
        if family.type == "counter":
            assert all(s.name == f"{name}_total" for s in family.samples), name
        if family.type == "histogram":
            assert name.endswith("_seconds"), f"{name}: a histogram of seconds says so"
        for sample in family.samples:
            # Never an agent or a tool call as a label: series must stay bounded.
            assert not {"workflow_id", "agent_id", "call_id", "run_id"} & sample.labels.keys()
            assert not any(v.startswith("agent-") for v in sample.labels.values())


async def test_health_endpoints(observed: tuple[Scenario, MetricsServer, str]) -> None:
    _, server, _ = observed
    assert await scrape(server, "/healthz") == (200, "ok\n")
    assert await scrape(server, "/readyz") == (200, "ok\n")
    assert (await scrape(server, "/nope"))[0] == 404


def deploy_queries() -> dict[str, str]:
    """Every PromQL expression of the dashboard and the alert rules, by where it is."""
    dashboard = json.loads((DEPLOY / "grafana/dashboards/duragent.json").read_text())
    queries = {
        f"panel {p['title']!r}": t["expr"]
        for p in dashboard["panels"]
        for t in p.get("targets", [])
    }
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":  # label_values(metric, label)
            metric = variable["definition"].split("(", 1)[1].split(",", 1)[0].strip()
            queries[f"variable {variable['name']!r}"] = metric
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            queries[f"alert {rule['alert']}"] = rule["expr"]
    return queries


async def test_dashboard_and_rules_query_only_what_the_worker_exposes(
    observed: tuple[Scenario, MetricsServer, str],
) -> None:
    _, server, _ = observed
    _, text = await scrape(server)
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    # Added by Prometheus to every scrape, not by the worker.
    labels["up"] = set()
    target_labels = {"job", "instance"}

    queries = deploy_queries()
    assert len(queries) > 20
    for where, expr in queries.items():
        unknown = promql_metrics(expr) - labels.keys()
        assert not unknown, f"{where} queries metrics no worker exposes: {unknown}"
        for metric, used in promql_selectors(expr):
            missing = used - labels[metric] - target_labels
            assert not missing, f"{where}: {metric} has no label {missing}"
