"""The deploy files put agents' files where every worker sees them, correctly by default.

Issue 11: two replicas with an ``emptyDir`` workspace each lose files between workers.
What is checked here, without containers: the Kubernetes Deployment has no per-pod
workspace and points at an object store; the object store's keys come only from a
Secret; every variable the manifests and the compose file set is one duragent (or
Temporal's client configuration) reads; and the compose stack's worker waits for an S3
server that has its bucket and knows its keys. (The layouts themselves are exercised
against a real SeaweedFS in the object store tests.)
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from temporalio.envconfig import ClientConfig

from duragent.activities.objectstore import ObjectStoreConfig
from duragent.worker.settings import Settings

DEPLOY = Path(__file__).parent.parent / "deploy"
ROOT = DEPLOY.parent
# The modules that read duragent's environment: the settings and the telemetry
# settings, and the object store connection they hand the AWS_* variables to.
SETTINGS_MODULES = (
    ROOT / "worker/settings.py",
    ROOT / "worker/telemetry/_settings.py",
    ROOT / "activities/objectstore.py",
)
AWS_STANDARD = frozenset(
    {
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    }
)
AWS_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
# What temporalio.envconfig reads (its names live in the Rust core, so cannot be grepped).
TEMPORAL_ENVCONFIG = re.compile(
    r"TEMPORAL_(ADDRESS|NAMESPACE|API_KEY|PROFILE|CONFIG_FILE|TLS(_[A-Z_]+)?"
    r"|GRPC_META_[A-Z0-9_]+|CODEC_(ENDPOINT|AUTH))"
)
SECRET_NAMES = frozenset({"OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"})
WORKSPACE_PATH = "/app/workspace"  # the image's DURAGENT_WORKSPACE (deploy/Dockerfile)


def load(relative: str) -> Any:
    return yaml.safe_load((DEPLOY / relative).read_text(encoding="utf-8"))


def worker_pod() -> dict[str, Any]:
    spec: dict[str, Any] = load("k8s/deployment.yaml")["spec"]["template"]["spec"]
    return spec


def worker_container() -> dict[str, Any]:
    [container] = worker_pod()["containers"]
    return dict(container)


def configmap() -> dict[str, str]:
    return {k: str(v) for k, v in load("k8s/configmap.yaml")["data"].items()}


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = load("compose.yaml")["services"]
    return services


def compose_env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in compose_services()[service].get("environment", {}).items()}


def read_names() -> set[str]:
    """Every quoted ALL_CAPS name in the modules that read the environment."""
    names: set[str] = set()
    for module in SETTINGS_MODULES:
        names |= set(re.findall(r"\"([A-Z][A-Z0-9_]+)\"", module.read_text(encoding="utf-8")))
    return names


def unknown_names(names: Iterable[str], *, read: set[str]) -> list[str]:
    unknown = []
    for name in names:
        if name.startswith("AWS_"):
            if name not in AWS_STANDARD or name not in read:
                unknown.append(name)
        elif name.startswith("TEMPORAL_"):
            if not TEMPORAL_ENVCONFIG.fullmatch(name):
                unknown.append(name)
        elif name not in read:
            unknown.append(name)
    return sorted(unknown)


# Kubernetes


def test_the_deployment_has_no_per_pod_workspace() -> None:
    pod = worker_pod()
    volumes = {v["name"]: v for v in pod["volumes"]}
    workspace = configmap()["DURAGENT_WORKSPACE"]
    mounts = {m["mountPath"]: m["name"] for m in worker_container().get("volumeMounts", [])}
    for path in {workspace, WORKSPACE_PATH} & mounts.keys():
        volume = volumes[mounts[path]]
        assert "emptyDir" not in volume, f"{path} is an emptyDir: each replica its own"
    assert "workspace" not in volumes or "emptyDir" not in volumes["workspace"]
    if not workspace.startswith("s3://"):
        # A directory workspace must be one volume every replica mounts read-write.
        volume = volumes[mounts[workspace]]
        claim = volume["persistentVolumeClaim"]["claimName"]
        pvc = next(
            d
            for d in yaml.safe_load_all((DEPLOY / "k8s/workspace-pvc.yaml").read_text())
            if d["metadata"]["name"] == claim
        )
        assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_deployment_shares_files_and_transcripts_through_the_object_store() -> None:
    config = configmap()
    assert config["DURAGENT_WORKSPACE"] == "s3://duragent/workspace"
    assert config["DURAGENT_STORE"] == "s3://duragent/store"
    assert "DURAGENT_STORE_DIR" not in config, "the object store replaces it"
    keys = dict.fromkeys(AWS_KEYS, "from-the-secret")
    settings = Settings.from_env({**config, **keys})
    assert settings.object_store is not None
    assert settings.object_store.url == "s3://duragent/store"
    assert settings.object_store.endpoint == config["AWS_ENDPOINT_URL"]
    assert settings.object_store.region == config["AWS_REGION"]
    assert settings.object_store.secrets == ("from-the-secret", "from-the-secret")
    workspace = ObjectStoreConfig.from_url(config["DURAGENT_WORKSPACE"], {**config, **keys})
    assert workspace.bucket == settings.object_store.bucket
    assert workspace.prefix != settings.object_store.prefix, "files and blobs apart"


def test_the_shared_volume_alternative_is_a_readwritemany_claim() -> None:
    [pvc] = yaml.safe_load_all((DEPLOY / "k8s/workspace-pvc.yaml").read_text(encoding="utf-8"))
    assert pvc["kind"] == "PersistentVolumeClaim"
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    # The commented alternative in the Deployment mounts that claim at the workspace path.
    commented = "\n".join(
        line.strip().removeprefix("# ")
        for line in (DEPLOY / "k8s/deployment.yaml").read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("# ")
    )
    assert f"claimName: {pvc['metadata']['name']}" in commented
    assert f"mountPath: {WORKSPACE_PATH}" in commented
    assert "workspace-pvc.yaml" not in load("k8s/kustomization.yaml")["resources"]


def test_the_deployment_takes_the_object_store_keys_only_from_a_secret() -> None:
    container = worker_container()
    config = configmap()
    env = {e["name"]: e for e in container.get("env", [])}
    secret_refs = {s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s}
    for name in AWS_KEYS:
        assert name not in config, f"{name} in the ConfigMap: keys belong in a Secret"
        if name in env:
            assert "value" not in env[name], f"{name} has a literal value"
            assert "secretKeyRef" in env[name]["valueFrom"], name
        else:
            assert secret_refs, f"{name} comes neither from secretKeyRef nor envFrom"
    for name in SECRET_NAMES & env.keys():
        assert "value" not in env[name], f"{name} has a literal value"
    # The secret the Deployment reads is the one deploy/README.md tells how to create.
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    names = {env[n]["valueFrom"]["secretKeyRef"]["name"] for n in AWS_KEYS if n in env}
    for secret in names | secret_refs:
        # The command with its continuation lines.
        match = re.search(rf"kubectl create secret generic {secret}\b(?:\\\n|[^\n])*", readme)
        assert match, f"deploy/README.md does not say how to create the {secret} secret"
        for name in AWS_KEYS:
            assert f"--from-literal={name}=" in match.group(0), (secret, name)


def test_every_variable_the_manifests_set_is_one_duragent_reads() -> None:
    container = worker_container()
    env = container.get("env", [])
    # Variables defined only for Kubernetes' $(NAME) expansion in another one.
    referenced = {n for e in env for n in re.findall(r"\$\((\w+)\)", e.get("value", ""))}
    plumbing = {e["name"] for e in env if "fieldRef" in e.get("valueFrom", {})} & referenced
    names = [*configmap(), *(e["name"] for e in env if e["name"] not in plumbing)]
    assert unknown_names(names, read=read_names()) == []


def test_the_configmap_reaches_temporal() -> None:
    config = configmap()
    loaded = ClientConfig.load_client_connect_config(override_env_vars=config)
    assert loaded["target_host"] == config["TEMPORAL_ADDRESS"]
    assert loaded["namespace"] == config["TEMPORAL_NAMESPACE"]


def test_an_unread_variable_is_caught() -> None:
    """The check above can fail: misspelt or non-standard names are reported."""
    names = ["DURAGENT_WORKSPCE", "AWS_S3_ENDPOINT", "TEMPORAL_ADRESS", "DURAGENT_STORE"]
    assert unknown_names(names, read=read_names()) == [
        "AWS_S3_ENDPOINT",
        "DURAGENT_WORKSPCE",
        "TEMPORAL_ADRESS",
    ]


# Compose


def duragent_services() -> dict[str, Any]:
    image = compose_services()["worker"]["image"]
    return {n: s for n, s in compose_services().items() if s.get("image") == image}


def s3_service() -> tuple[str, dict[str, Any]]:
    [(name, service)] = [
        (n, s)
        for n, s in compose_services().items()
        if "seaweedfs" in s.get("image", "") and "-s3" in s.get("command", [])
    ]
    return name, service


def bucket_service() -> tuple[str, dict[str, Any]]:
    """The one-shot service that creates the bucket: the S3 server's image, run once."""
    s3_name, s3 = s3_service()
    [(name, service)] = [
        (n, s)
        for n, s in compose_services().items()
        if n != s3_name and s.get("image") == s3["image"]
    ]
    return name, service


def flags(command: list[str]) -> dict[str, str]:
    return dict(arg.lstrip("-").split("=", 1) for arg in command if "=" in arg)


def test_every_variable_compose_sets_for_duragent_is_one_it_reads() -> None:
    read = read_names()
    for name, service in duragent_services().items():
        assert unknown_names(service.get("environment", {}), read=read) == [], name


def test_the_compose_worker_waits_for_the_object_store_and_its_bucket() -> None:
    services = compose_services()
    s3_name, s3 = s3_service()
    depends = services["worker"]["depends_on"]
    assert depends[s3_name]["condition"] == "service_healthy"
    assert "healthcheck" in s3
    # The bucket is made by a one-shot service the worker waits for, after the server.
    init_name, init = bucket_service()
    assert depends[init_name]["condition"] == "service_completed_successfully"
    assert init["depends_on"][s3_name]["condition"] == "service_healthy"
    script = " ".join(init["entrypoint"])
    [bucket] = re.findall(r"s3\.bucket\.create -name ([a-z0-9.-]+)", script)
    assert f"-master={s3_name}:" in script
    env = compose_env("worker")
    for variable in ("DURAGENT_WORKSPACE", "DURAGENT_STORE"):
        config = ObjectStoreConfig.from_url(env[variable], env)
        assert config.bucket == bucket, variable
    endpoint = urlsplit(env["AWS_ENDPOINT_URL"])
    assert endpoint.hostname == s3_name
    assert endpoint.port == int(flags(s3["command"]).get("s3.port", "8333"))
    assert f":{endpoint.port}/" in " ".join(s3["healthcheck"]["test"])


def test_the_compose_worker_signs_with_an_identity_the_s3_server_knows() -> None:
    _, s3 = s3_service()
    config_path = flags(s3["command"])["s3.config"]
    [source] = [v.split(":")[0] for v in s3["volumes"] if v.split(":")[1] == config_path]
    identities = json.loads((DEPLOY / source).read_text(encoding="utf-8"))["identities"]
    env = compose_env("worker")
    signing = {"accessKey": env["AWS_ACCESS_KEY_ID"], "secretKey": env["AWS_SECRET_ACCESS_KEY"]}
    [identity] = [i for i in identities if signing in i.get("credentials", [])]
    assert {"Read", "Write", "List"} <= set(identity["actions"])
    settings = Settings.from_env(env)
    assert settings.object_store is not None
    assert set(settings.object_store.secrets) == set(signing.values()), "redacted"


@pytest.mark.parametrize("service", ["seaweedfs", "seaweedfs-bucket"])
def test_the_object_store_image_is_pinned(service: str) -> None:
    image = compose_services()[service]["image"]
    assert re.fullmatch(r"chrislusf/seaweedfs:\d+\.\d+", image), image


def test_the_bucket_script_is_one_shell_command() -> None:
    """The folded entrypoint script parses as sh (compose turns ``$$`` into ``$``)."""
    _, init = bucket_service()
    shell, flag, script = init["entrypoint"]
    assert (shell, flag) == ("/bin/sh", "-c")
    assert "$(" not in script.replace("$$(", ""), "unescaped $: compose would interpolate it"
    shlex.split(script.replace("$$", "$"))  # balanced quotes
