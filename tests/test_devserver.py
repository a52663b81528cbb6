"""Tests for worker.devserver: CLI lookup order, and a real dev server's lifecycle.

The lookup tests use fake executables: they only check where we look. Every other test
runs the real pinned Temporal CLI (built once per machine into the shared cache).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

import pytest
import temporalio.api.operatorservice.v1 as operator_service
import temporalio.api.workflowservice.v1 as workflow_service
from temporalio.client import Client, WorkflowExecutionStatus

from duragent.worker.devserver import (
    DEV_DYNAMIC_CONFIG,
    DevServer,
    DevServerError,
    cache_dir,
    ensure_temporal_cli,
    find_temporal_cli,
    free_port,
)

# A cold `go install` of the CLI takes minutes; the first real-server test may wait for it.


def _fake_executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def isolated_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No TEMPORAL_CLI, an empty PATH directory and an empty cache under tmp_path."""
    monkeypatch.delenv("TEMPORAL_CLI", raising=False)
    empty_bin = tmp_path / "empty-path"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.setenv("DURAGENT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


# ---------------------------------------------------------------- lookup order


def test_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DURAGENT_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "duragent"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "duragent"
    monkeypatch.setenv("DURAGENT_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_dir() == tmp_path / "explicit"


def test_missing_temporal_cli_env_is_a_clear_error(
    isolated_lookup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_executable(isolated_lookup / "cache" / "bin" / "temporal")
    monkeypatch.setenv("TEMPORAL_CLI", str(isolated_lookup / "nowhere" / "temporal"))
    # A wrong explicit setting must not fall through to the cached CLI.
    with pytest.raises(DevServerError, match=r"TEMPORAL_CLI=.*not an executable file"):
        find_temporal_cli()


def test_non_executable_temporal_cli_env_is_an_error(
    isolated_lookup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = isolated_lookup / "temporal.txt"
    plain.write_text("not a program")
    monkeypatch.setenv("TEMPORAL_CLI", str(plain))
    with pytest.raises(DevServerError, match="TEMPORAL_CLI"):
        find_temporal_cli()


def test_lookup_order_env_then_path_then_cache(
    isolated_lookup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert find_temporal_cli() is None

    cached = _fake_executable(isolated_lookup / "cache" / "bin" / "temporal")
    assert find_temporal_cli() == cached

    on_path = _fake_executable(isolated_lookup / "path-bin" / "temporal")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert find_temporal_cli() == on_path

    explicit = _fake_executable(isolated_lookup / "explicit" / "temporal")
    monkeypatch.setenv("TEMPORAL_CLI", str(explicit))
    assert find_temporal_cli() == explicit
    # ensure_temporal_cli installs nothing when a CLI is found.
    assert ensure_temporal_cli(log=pytest.fail) == explicit


# ---------------------------------------------------------------- dynamic config


def _dynamic_config(argv: list[str]) -> dict[str, str]:
    """The ``--dynamic-config-value KEY=VALUE`` pairs of a command line."""
    values = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--dynamic-config-value"]
    return dict(value.split("=", 1) for value in values)


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")


def test_the_queue_poll_throttle_is_lifted_by_default() -> None:
    assert _dynamic_config(DevServer(ui=False).command()) == {
        "history.transferProcessorMaxPollRPS": "2000",
        "history.timerProcessorMaxPollRPS": "2000",
    }


def test_a_callers_dynamic_config_wins_over_the_defaults() -> None:
    server = DevServer(
        ui=False,
        dynamic_config={"history.timerProcessorMaxPollRPS": 50, "frontend.flag": True},
    )
    argv = server.command()
    assert _dynamic_config(argv) == {
        "history.transferProcessorMaxPollRPS": "2000",
        "history.timerProcessorMaxPollRPS": "50",
        "frontend.flag": "true",
    }
    assert argv.count("--dynamic-config-value") == 3, "each key once"


async def test_the_sessions_server_runs_with_the_throttle_lifted(temporal: DevServer) -> None:
    # What the kernel says the process was started with: the test fixture (and so
    # `duragent server` and the demo, which build the same DevServer) really passes it.
    assert temporal.pid is not None
    argv = _cmdline(temporal.pid)
    assert Path(argv[0]).name == "temporal" and argv[1:3] == ["server", "start-dev"]
    passed = _dynamic_config(argv)
    assert {key: passed.get(key) for key in DEV_DYNAMIC_CONFIG} == {
        key: str(value) for key, value in DEV_DYNAMIC_CONFIG.items()
    }


# ---------------------------------------------------------------- the real CLI


@pytest.fixture(scope="session")
def temporal_cli() -> Path:
    """The real pinned CLI (``make test`` installs it before pytest starts)."""
    return ensure_temporal_cli()


def _port_is_closed(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def test_real_server_answers_then_stops(temporal_cli: Path) -> None:
    server = DevServer(cli=temporal_cli, search_attributes={"DuragentStatus": "Keyword"})
    async with server:
        assert server.running
        assert server.address == f"127.0.0.1:{server.port}"
        assert server.ui_url is not None
        client = await Client.connect(server.address, namespace=server.namespace)
        info = await client.workflow_service.get_system_info(
            workflow_service.GetSystemInfoRequest()
        )
        assert info.server_version
        assert [wf async for wf in client.list_workflows()] == []
        scratch_db = server.db_file
        assert scratch_db.exists()
    assert not server.running
    assert server.pid is None
    assert _port_is_closed(server.port)
    assert not scratch_db.exists(), "the temporary database is removed on stop"


async def test_restart_keeps_workflows_on_same_address(temporal_cli: Path, tmp_path: Path) -> None:
    db_file = tmp_path / "temporal.db"
    server = DevServer(cli=temporal_cli, db_file=db_file, ui=False)
    assert server.ui_url is None
    async with server:
        client = await Client.connect(server.address)
        # No worker polls this queue: the run stays RUNNING, and only persistence can
        # carry it across the restart.
        handle = await client.start_workflow(
            "NoSuchWorkflow", id=f"restart-{uuid.uuid4()}", task_queue=f"tq-{uuid.uuid4()}"
        )
        address = server.address
        await server.arestart()
        assert server.address == address
        client = await Client.connect(server.address)
        description = await client.get_workflow_handle(handle.id).describe()
        assert description.status == WorkflowExecutionStatus.RUNNING
    assert db_file.exists(), "a caller's database file is never deleted"


async def test_search_attributes_reach_a_database_made_without_them(
    temporal_cli: Path, tmp_path: Path
) -> None:
    db_file = tmp_path / "temporal.db"
    async with DevServer(cli=temporal_cli, db_file=db_file, ui=False):
        pass  # the database now exists, with no custom search attribute
    wanted = {"DuragentStatus": "Keyword", "DuragentTags": "KeywordList"}
    async with DevServer(
        cli=temporal_cli, db_file=db_file, ui=False, search_attributes=wanted
    ) as server:
        client = await Client.connect(server.address)
        listed = await client.operator_service.list_search_attributes(
            operator_service.ListSearchAttributesRequest(namespace="default")
        )
    assert set(wanted) <= set(listed.custom_attributes)


async def test_early_exit_raises_with_server_output(temporal_cli: Path) -> None:
    server = DevServer(cli=temporal_cli, ui=False, extra_args=["--no-such-flag"])
    with pytest.raises(DevServerError, match=r"(?s)exited early.*no-such-flag"):
        await server.astart()
    assert not server.running
    server.stop()


async def test_sync_start_refuses_to_block_a_running_loop(temporal_cli: Path) -> None:
    server = DevServer(cli=temporal_cli, ui=False)
    with pytest.raises(DevServerError, match="astart"):
        server.start()
    assert not server.running


def test_sync_context_manager(temporal_cli: Path) -> None:
    with DevServer(cli=temporal_cli, ui=False) as server:
        assert server.running
        assert not _port_is_closed(server.port)
    assert not server.running


async def test_module_entry_point_runs_until_sigint(temporal_cli: Path) -> None:
    port, ui_port = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "duragent.worker.devserver",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TEMPORAL_CLI": str(temporal_cli)},
    )
    try:
        assert proc.stdout is not None
        first_line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        assert f"127.0.0.1:{port}" in first_line.decode()
        ui_line = await asyncio.wait_for(proc.stdout.readline(), timeout=5)
        assert f"http://127.0.0.1:{ui_port}" in ui_line.decode()
        client = await Client.connect(f"127.0.0.1:{port}")
        await client.workflow_service.get_system_info(workflow_service.GetSystemInfoRequest())
        proc.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=30)
        assert proc.returncode == 0, stderr.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    # main() stops and reaps the server before it returns.
    assert _port_is_closed(port)
