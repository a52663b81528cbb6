"""The files in deploy/ parse, agree with each other and with the code, and pass promtool.

Containers do not run here; what can be checked without them is: every YAML and JSON
file, Prometheus' own checker on the rules and the configuration, and that the
compose file, the manifests and the collector configuration name what the worker reads
and serves. (That the dashboard and the rules query only real metrics is checked
against a real scrape in test_observability_metrics.py.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from duragent.worker.settings import Settings
from duragent.worker.telemetry import TelemetrySettings, TracesExporter
from duragent.worker.telemetry._settings import DEFAULT_METRICS_PORT

DEPLOY = Path(__file__).parent.parent / "deploy"
ROOT = DEPLOY.parent
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
JSON_FILES = sorted(DEPLOY.rglob("*.json"))


def load(relative: str) -> Any:
    return yaml.safe_load((DEPLOY / relative).read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert documents and all(isinstance(d, dict) for d in documents)


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_json_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)


def test_there_is_everything_the_issue_lists() -> None:
    assert len(YAML_FILES) >= 10 and JSON_FILES
    for name in (
        "Dockerfile",
        "compose.yaml",
        "otel-collector.yaml",
        "prometheus/alerts.yml",
        "grafana/dashboards/duragent.json",
        "k8s/deployment.yaml",
        "k8s/service.yaml",
        "k8s/configmap.yaml",
    ):
        assert (DEPLOY / name).is_file(), name


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(
            "promtool is not installed: it comes with the Debian package `prometheus`, "
            "which scripts/bootstrap.sh installs where apt-get runs as root"
        )
    return path


def test_promtool_accepts_the_rules() -> None:
    checked = subprocess.run(
        [promtool(), "check", "rules", str(DEPLOY / "prometheus/alerts.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_promtool_accepts_the_configuration(tmp_path: Path) -> None:
    # The configuration names the rules by their path in the container.
    config = (DEPLOY / "prometheus/prometheus.yml").read_text(encoding="utf-8")
    rules = str(DEPLOY / "prometheus/alerts.yml")
    local = tmp_path / "prometheus.yml"
    local.write_text(config.replace("/etc/prometheus/alerts.yml", rules), encoding="utf-8")
    checked = subprocess.run(
        [promtool(), "check", "config", "--syntax-only", str(local)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_compose_runs_the_whole_stack() -> None:
    compose = load("compose.yaml")
    services = compose["services"]
    for name in ("postgresql", "temporal", "worker", "otel-collector", "prometheus", "grafana"):
        assert name in services, name
    assert "jaeger" in services, "a trace backend"
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    worker = services["worker"]
    assert (ROOT / worker["build"]["dockerfile"]).is_file()
    assert "9464:9464" in worker["ports"]
    env = {k: str(v) for k, v in worker["environment"].items()}
    telemetry = TelemetrySettings.from_env(env)
    assert telemetry.tracing.exporter is TracesExporter.OTLP
    assert telemetry.tracing.endpoint == "http://otel-collector:4317"
    assert telemetry.metrics.port == DEFAULT_METRICS_PORT
    # Every file the stack mounts is in the repository.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{source} is mounted but missing"
    scrape = load("prometheus/prometheus.yml")["scrape_configs"]
    jobs = {job["job_name"]: job for job in scrape}
    assert jobs["duragent-worker"]["static_configs"][0]["targets"] == ["worker:9464"]


def test_the_collector_pipeline_is_wired() -> None:
    collector = load("otel-collector.yaml")
    pipeline = collector["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        assert set(pipeline[kind]) <= set(collector[kind]), kind
    assert collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    sources = load("grafana/provisioning/datasources/duragent.yaml")["datasources"]
    assert {s["type"] for s in sources} >= {"prometheus", "jaeger"}
    dashboard = json.loads((DEPLOY / "grafana/dashboards/duragent.json").read_text())
    [datasource] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert datasource["current"]["value"] in {s["uid"] for s in sources}
    titles = " / ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in (
        "agents by status",
        "cycles",
        "latency p50 / p95 / p99",
        "tokens",
        "tool error rate",
        "waiting for a person",
        "longest wait",
        "task-slot saturation",
    ):
        assert topic in titles, topic


def test_the_deployment_probes_and_configures_the_worker() -> None:
    deployment = load("k8s/deployment.yaml")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    [port] = container["ports"]
    assert port == {"name": "metrics", "containerPort": DEFAULT_METRICS_PORT}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > 30, "longer than the worker's graceful shutdown"
    # The ConfigMap is the worker's environment: it must be one the worker accepts.
    config = load("k8s/configmap.yaml")["data"]
    assert [c["configMapRef"]["name"] for c in container["envFrom"]] == ["duragent-worker"]
    settings = Settings.from_env(config)
    telemetry = TelemetrySettings.from_env(config)
    assert settings.task_queue == "duragent"
    assert telemetry.metrics.port == port["containerPort"]
    service = load("k8s/service.yaml")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    selector = service["spec"]["selector"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    kustomization = load("k8s/kustomization.yaml")
    assert all((DEPLOY / "k8s" / r).is_file() for r in kustomization["resources"])
