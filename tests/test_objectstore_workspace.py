"""What only the object store workspace has: plain objects, folder markers, its failures.

What it shares with the other backends is in ``test_workspace_protocol.py``. The store
is a real S3 server (SeaweedFS, see ``tests/objectstore.py``).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

import obstore
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from duragent.activities.errors import StoreErrorType
from duragent.activities.models import ToolCall, ToolRequest, ToolStatus
from duragent.activities.objectstore import ObjectStoreConfig
from duragent.activities.tools import ToolRegistry, default_tools
from duragent.activities.tools.activity import ToolActivities
from duragent.activities.tools.objectstore_workspace import FOLDER_MARKER, S3Workspace
from duragent.worker.cli import main
from duragent.worker.client import start_agent
from duragent.worker.main import agent_worker
from duragent.worker.settings import Settings, SettingsError
from duragent.workflows.models import AgentInput, AgentStatus
from tests.conftest import Harness
from tests.objectstore import ObjectStoreServer, _free_ports
from tests.test_agent import call as step_call
from tests.test_agent import finish, tool_messages
from tests.test_shell_host import session_of
from tests.test_workspace_protocol import OPERATIONS, code_of

KEYS = {"AWS_ACCESS_KEY_ID": "AKIDWORKSPACE99", "AWS_SECRET_ACCESS_KEY": "wsSecretKeyEXAMPLE/42"}


def keys_below(config: ObjectStoreConfig, prefix: str) -> set[str]:
    """Every key below a prefix of the bucket, as any S3 client lists them."""
    root = dataclasses.replace(config, prefix="").client()
    return {meta["path"] for meta in obstore.list(root, prefix).collect()}


async def test_files_are_plain_objects_under_the_prefix(s3_bucket: ObjectStoreConfig) -> None:
    config = s3_bucket.child("agents", "a1")
    ws = S3Workspace(config)
    await ws.write_text("src/main.py", "print('hi')\n")
    await ws.mkdir("empty")
    assert keys_below(config, "agents") == {
        "agents/a1/src/main.py",
        f"agents/a1/empty/{FOLDER_MARKER}",
    }
    # What another S3 client puts there is a file of the workspace, and the other way.
    other = config.client()
    await obstore.put_async(other, "docs/readme.md", b"# hello\n")
    assert await ws.read_text("docs/readme.md") == "# hello\n"
    assert await ws.walk(".") == ["docs/readme.md", "src/main.py"]
    got = await obstore.get_async(other, "src/main.py")
    assert bytes(await got.bytes_async()) == b"print('hi')\n"


async def test_markers_are_never_seen_and_their_name_is_reserved(
    s3_bucket: ObjectStoreConfig,
) -> None:
    ws = S3Workspace(s3_bucket)
    await ws.mkdir("a/b")
    assert await ws.list_dir("a") == ["b/"]
    assert await ws.list_dir("a/b") == []
    assert await ws.walk(".", include_hidden=True) == []
    for operation, call in OPERATIONS.items():
        assert await code_of(call(ws, f"a/b/{FOLDER_MARKER}")) == "invalid_path", operation
    # A file in the folder leaves the marker in place (one PUT less); it stays unseen.
    await ws.write_text("a/b/c.txt", "x")
    assert await ws.list_dir("a/b") == ["c.txt"]
    assert await ws.walk("a", include_hidden=True) == ["a/b/c.txt"]


async def test_prefixes_keep_workspaces_apart(s3_bucket: ObjectStoreConfig) -> None:
    """``agents/a`` and ``agents/ab`` share a string prefix, never a file."""
    a, ab = S3Workspace(s3_bucket.child("agents/a")), S3Workspace(s3_bucket.child("agents/ab"))
    await a.write_text("f.txt", "a's")
    await ab.write_text("f.txt", "ab's")
    assert await a.walk(".") == ["f.txt"] and await a.read_text("f.txt") == "a's"
    await a.delete("f.txt")
    assert await ab.read_text("f.txt") == "ab's"
    assert await code_of(a.read_text("../ab/f.txt")) == "path_escape"


async def test_a_store_that_cannot_be_reached_is_retried_without_its_keys() -> None:
    (port,) = _free_ports(1)  # nothing listens there
    config = ObjectStoreConfig.from_url(
        "s3://bucket/ws", {**KEYS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    )
    ws = S3Workspace(config)
    for operation, call in OPERATIONS.items():
        with pytest.raises(ApplicationError) as caught:
            await call(ws, "some/file.txt")
        assert caught.value.type == StoreErrorType.UNAVAILABLE, operation
        assert not caught.value.non_retryable, operation
        assert "s3://bucket/ws" in caught.value.message
        assert all(secret not in caught.value.message for secret in KEYS.values())


async def test_a_tool_on_a_store_that_is_down_fails_the_attempt_for_temporal_to_retry() -> None:
    """Not a tool error the model reads: the activity fails, and Temporal tries again."""
    (port,) = _free_ports(1)
    config = ObjectStoreConfig.from_url(
        "s3://bucket/ws", {**KEYS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    )
    tools = ToolActivities(ToolRegistry(default_tools()), S3Workspace(config))
    call = ToolCall(id="c", name="_read_file", arguments=json.dumps({"path": "a.txt"}))
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(
            tools.run_tool, ToolRequest(call=call, idempotency_key="wf:c")
        )
    assert caught.value.type == StoreErrorType.UNAVAILABLE and not caught.value.non_retryable


async def test_wrong_keys_fail_without_retrying_or_showing_them(
    object_store: ObjectStoreServer, s3_bucket: ObjectStoreConfig
) -> None:
    wrong = dataclasses.replace(s3_bucket, secret_key="not-the-workspace-secret")
    ws = S3Workspace(wrong)
    for call in (ws.write_text("a.txt", "x"), ws.read_text("a.txt"), ws.walk(".")):
        with pytest.raises(ApplicationError) as caught:
            await call
        assert caught.value.type == StoreErrorType.DENIED and caught.value.non_retryable
        assert "not-the-workspace-secret" not in caught.value.message
        assert object_store.access_key not in caught.value.message


async def test_the_tools_read_what_was_written_through_another_client(
    s3_bucket: ObjectStoreConfig,
) -> None:
    """One worker's writes are every worker's files: nothing is cached per client."""
    writer, reader = S3Workspace(s3_bucket), S3Workspace(dataclasses.replace(s3_bucket))
    tools = ToolActivities(ToolRegistry(default_tools()), reader)
    await writer.write_text("notes.md", "one\ntwo\n")
    call = ToolCall(id="c", name="_read_file", arguments=json.dumps({"path": "notes.md"}))
    result = await ActivityEnvironment().run(
        tools.run_tool, ToolRequest(call=call, idempotency_key="wf:c")
    )
    assert (result.status, result.content) == (ToolStatus.SUCCESS, "one\ntwo")


async def test_a_bucket_that_does_not_exist_is_no_retry(object_store: ObjectStoreServer) -> None:
    ws = S3Workspace(object_store.config("never-created-bucket", "ws"))
    for call in (ws.write_text("a.txt", "x"), ws.walk("."), ws.list_dir(".")):
        with pytest.raises(ApplicationError) as caught:
            await call
        assert caught.value.type == StoreErrorType.MISCONFIGURED and caught.value.non_retryable


async def test_a_path_too_long_for_a_key_is_refused(s3_bucket: ObjectStoreConfig) -> None:
    ws = S3Workspace(s3_bucket)
    fits, too_long = "/".join(["d" * 99] * 8), "/".join(["d" * 99] * 10)  # 799, 999 bytes
    assert await ws.write_text(fits, "x") == 1
    assert await code_of(ws.write_text(too_long, "x")) == "invalid_path"
    assert await ws.walk(".") == [fits]


# ---- chosen by DURAGENT_WORKSPACE


def test_an_s3_url_picks_the_object_store_and_a_path_the_folder() -> None:
    env = {**KEYS, "AWS_ENDPOINT_URL": "http://127.0.0.1:8333", "AWS_REGION": "eu-west-3"}
    settings = Settings.from_env({"DURAGENT_WORKSPACE": "s3://agents-ws/prod/files/", **env})
    store = settings.workspace_store
    assert store is not None and store.url == "s3://agents-ws/prod/files"
    assert (store.endpoint, store.region) == ("http://127.0.0.1:8333", "eu-west-3")
    assert set(KEYS.values()) <= set(settings.secrets)  # redacted from whatever leaves
    local = Settings.from_env({"DURAGENT_WORKSPACE": "/srv/agents/ws", **env})
    assert (local.workspace, local.workspace_store) == (Path("/srv/agents/ws"), None)
    assert Settings.from_env({}).workspace == Path("workspace")


@pytest.mark.parametrize(
    ("url", "env", "says"),
    [
        ("gs://bucket/x", {}, "expected s3://bucket/prefix"),
        ("s3://", {}, "is not a bucket name"),
        ("s3://Bad_Bucket/x", {}, "is not a bucket name"),
        ("s3://key:secret@bucket/x", {}, "put no credentials in the URL"),
        ("s3://bucket/x", {"AWS_SECRET_ACCESS_KEY": "s3cr3t-value"}, "set both"),
        ("s3://bucket/x", {"AWS_ENDPOINT_URL": "localhost:9000"}, "AWS_ENDPOINT_URL must be"),
    ],
)
def test_a_workspace_url_that_cannot_work_is_one_clear_settings_error(
    url: str, env: dict[str, str], says: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"DURAGENT_WORKSPACE": url, **env})
    message = str(caught.value)
    assert message.startswith("DURAGENT_WORKSPACE: ") and says in message
    assert "\n" not in message and "secret" not in message.replace("AWS_SECRET_ACCESS_KEY", "")


def test_the_cli_exits_2_on_a_bad_workspace_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DURAGENT_WORKSPACE", "s3://Bad_Bucket/x")
    assert main(["worker"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("duragent: error: DURAGENT_WORKSPACE: ") and "\n" not in err


async def test_without_local_copies_the_shell_says_what_it_needs(
    s3_bucket: ObjectStoreConfig,
) -> None:
    tools = ToolActivities(ToolRegistry(default_tools()), S3Workspace(s3_bucket))
    for background in (False, True):
        arguments = json.dumps({"command": "ls", "background": background})
        result = await ActivityEnvironment().run(
            tools.run_tool,
            ToolRequest(
                call=ToolCall(id="c", name="_bash", arguments=arguments), idempotency_key="wf:c"
            ),
        )
        assert (result.status, result.error_code) == (ToolStatus.ERROR, "unsupported")
        if not background:  # (without background commands, that is what it says first)
            assert "shell commands need a local folder" in result.content
            assert s3_bucket.url in result.content


async def test_an_agent_runs_shell_commands_on_the_object_store(
    harness: Harness, s3_bucket: ObjectStoreConfig
) -> None:
    """Commands run in the worker's copy; what they change is in the store for every worker."""
    agent_id = f"shell-s3-{uuid.uuid4().hex[:8]}"
    session = session_of(agent_id, 4, 3)
    task = harness.script(
        [
            {
                "tool_calls": [
                    step_call("_write_file", path="in.txt", content="hello from the store")
                ]
            },
            {"tool_calls": [step_call("_write_file", path="gone.txt", content="delete me")]},
            {
                "tool_calls": [
                    step_call("_bash", command="cat in.txt; echo made > out.txt; rm gone.txt")
                ]
            },
            {
                "tool_calls": [
                    step_call("_bash", command="sleep 0.3; echo later > bg.txt", background=True)
                ]
            },
            {
                "tool_calls": [
                    step_call("_check_background_command", session_id=session, wait_seconds=20)
                ]
            },
            {
                "tool_calls": [
                    step_call("_read_file", path="bg.txt"),
                    step_call("_read_file", path="out.txt"),
                ]
            },
            finish(),
        ]
    )
    config = s3_bucket.child("agents")
    settings = dataclasses.replace(harness.settings(), workspace_store=config)
    async with agent_worker(harness.client, settings):
        input = AgentInput(task=task, model="scripted")
        handle = await start_agent(
            harness.client, input, task_queue=harness.task_queue, agent_id=agent_id
        )
        result = await handle.result()
    assert result.status is AgentStatus.COMPLETED, result
    outputs = tool_messages(harness.requests()[-1].body)
    assert "hello from the store" in outputs[2] and "[exit code 0]" in outputs[2]
    assert "ended" in outputs[4] and "exit code 0" in outputs[4], outputs[4]
    assert "later" in outputs[5] and "made" in outputs[6]
    assert keys_below(config, "agents") == {
        f"agents/{agent_id}/{name}" for name in ("in.txt", "out.txt", "bg.txt")
    }
    assert not harness.workspace.exists()  # nothing local but the worker's own copy


async def test_an_agent_works_in_the_object_store(
    harness: Harness, s3_bucket: ObjectStoreConfig
) -> None:
    """A worker with DURAGENT_WORKSPACE=s3://...: the agent's files are objects, none local."""
    write = {"path": "report/summary.md", "content": "# Done\n"}
    task = harness.script(
        [
            {"tool_calls": [{"name": "_write_file", "arguments": write}]},
            {"tool_calls": [{"name": "_read_file", "arguments": {"path": "report/summary.md"}}]},
            {"tool_calls": [{"name": "_task_finish", "arguments": {"message": "written"}}]},
        ]
    )
    config = s3_bucket.child("agents")
    settings = dataclasses.replace(harness.settings(), workspace_store=config)
    async with agent_worker(harness.client, settings):
        handle = await start_agent(
            harness.client, AgentInput(task=task, model="scripted"), task_queue=harness.task_queue
        )
        result = await handle.result()
    assert result.status is AgentStatus.COMPLETED
    tool_messages = [
        m["content"] for r in harness.requests() for m in r.body["messages"] if m["role"] == "tool"
    ]
    assert "# Done" in tool_messages[-1]
    # Under the agent's own folder: its id, a prefix of its own.
    assert keys_below(config, "agents") == {f"agents/{handle.id}/report/summary.md"}
    assert not harness.workspace.exists()  # the local folder was never made
