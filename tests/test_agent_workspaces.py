"""Per-agent workspaces on a real server: each agent its folder, unless it names one.

An agent that names no workspace works in ``<root>/<its id>/`` and cannot reach another
agent's folder; agents that name the same ``--workspace`` share it; a sub-agent works
in its parent's folder. Runs recorded before the change keep the whole root: their
histories replay in ``tests/test_replay.py``.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from duragent.worker.client import start_agent
from duragent.workflows.models import AgentInput, AgentStatus, SubAgentSpec
from duragent.workflows.policy import own_workspace
from tests.conftest import Harness
from tests.processes import cli, worker_env
from tests.test_agent import call, finish, start, tool_messages
from tests.test_cli import one_line_error
from tests.test_sub_agents import child_script


def second_script(harness: Harness, steps: list[dict[str, Any]]) -> tuple[str, str]:
    """A script for a second agent of the test: its task, and its marker."""
    marker = f"[second {uuid.uuid4().hex[:10]}]"  # not the first's marker plus a suffix
    harness.llm.add_script({"name": marker, "match": marker, "steps": steps})
    return f"{marker} do the task", marker


async def test_agents_with_their_own_folders_cannot_read_each_other(harness: Harness) -> None:
    first_id = f"first-{uuid.uuid4().hex[:8]}"
    task = harness.script(
        [
            {"tool_calls": [call("_write_file", path="secret.txt", content="S")]},
            finish(files=["secret.txt"]),
        ]
    )
    other_task, other = second_script(
        harness,
        [
            {
                "tool_calls": [
                    call("_read_file", path="secret.txt"),
                    call("_read_file", path=f"../{first_id}/secret.txt"),
                    call("_list_files"),
                ]
            },
            finish(),
        ],
    )
    async with harness.worker():
        input = AgentInput(task=task, model="scripted")
        first = await start_agent(
            harness.client, input, task_queue=harness.task_queue, agent_id=first_id
        )
        result = await first.result()
        second = await start(harness, other_task)
        second_result = await second.result()

    assert result.workspace == first_id and result.files == ["secret.txt"]
    assert (harness.workspace / first_id / "secret.txt").read_text() == "S"
    assert not (harness.workspace / "secret.txt").exists()
    assert second_result.status is AgentStatus.COMPLETED
    assert second_result.workspace == second.id
    last = [r for r in harness.llm.requests if r.script == other][-1].body
    missing, escape, listed = tool_messages(last)
    assert missing.startswith("ERROR (not_found)"), missing
    assert escape.startswith("ERROR (path_escape)"), escape
    assert first_id not in listed


async def test_agents_naming_one_workspace_share_it(harness: Harness) -> None:
    task = harness.script(
        [{"tool_calls": [call("_write_file", path="notes.txt", content="shared")]}, finish()]
    )
    other_task, other = second_script(
        harness, [{"tool_calls": [call("_read_file", path="notes.txt")]}, finish()]
    )
    async with harness.worker():
        first = await start(harness, task, workspace="team/alpha")
        assert (await first.result()).workspace == "team/alpha"
        second = await start(harness, other_task, workspace="team/./alpha")
        assert (await second.result()).workspace == "team/alpha"

    assert (harness.workspace / "team" / "alpha" / "notes.txt").read_text() == "shared"
    last = [r for r in harness.llm.requests if r.script == other][-1].body
    assert tool_messages(last) == ["shared"]


async def test_a_sub_agent_works_in_its_parents_folder(harness: Harness) -> None:
    child = child_script(
        harness,
        "reader",
        [
            {
                "tool_calls": [
                    call("_read_file", path="plan.txt"),
                    call("_write_file", path="child.txt", content="from the child"),
                ]
            },
            finish("read it"),
        ],
    )
    task = harness.script(
        [
            {"tool_calls": [call("_write_file", path="plan.txt", content="the plan")]},
            {"tool_calls": [call("_create_sub_task", agent="helper", task=f"read {child}")]},
            {"tool_calls": [call("_read_file", path="child.txt")]},
            finish(),
        ]
    )
    helper = {"helper": SubAgentSpec(description="reads", max_cycles=3)}
    async with harness.worker():
        handle = await start(harness, task, sub_agents=helper)
        result = await handle.result()

    assert result.status is AgentStatus.COMPLETED
    child_requests = [r for r in harness.llm.requests if r.script == child]
    assert tool_messages(child_requests[-1].body)[0] == "the plan"
    assert tool_messages(harness.requests()[-1].body)[-1] == "from the child"
    assert (harness.folder(handle.id) / "child.txt").read_text() == "from the child"


async def test_the_shell_runs_in_the_agents_folder(harness: Harness) -> None:
    task = harness.script(
        [{"tool_calls": [call("_bash", command="echo hi > made.txt; ls; pwd")]}, finish()]
    )
    async with harness.worker():
        handle = await start(harness, task)
        await handle.result()

    assert (harness.folder(handle.id) / "made.txt").read_text() == "hi\n"
    assert not (harness.workspace / "made.txt").exists()
    [output] = tool_messages(harness.requests()[-1].body)
    assert output.startswith("made.txt\n"), output  # its folder alone: nothing else there


async def test_run_with_a_named_workspace_from_the_cli(harness: Harness) -> None:
    task = harness.script(
        [{"tool_calls": [call("_write_file", path="a.txt", content="A")]}, finish(files=["a.txt"])]
    )
    env = worker_env(harness)
    agent_id = f"cli-ws-{harness.task_queue}"
    async with harness.worker():
        ran = await cli(env, "run", task, "--id", agent_id, "--workspace", "team", "--wait")
        status = await cli(env, "status", agent_id)

    assert ran.returncode == 0, ran.stderr
    assert "folder: team/" in ran.stdout.splitlines()
    assert "folder:  team/" in status.stdout.splitlines()
    assert (harness.workspace / "team" / "a.txt").read_text() == "A"


async def test_a_bad_workspace_name_is_a_usage_error(harness: Harness) -> None:
    env = worker_env(harness)
    for name, reason in [
        ("../other", "must not contain '..'"),
        ("a/../../b", "must not contain '..'"),
        ("/etc", "must be relative"),
        ("~/x", "must be relative"),
        (".", "must name a folder"),
        ("", "must not be empty"),
    ]:
        result = await cli(env, "run", "a task", "--workspace", name)
        one_line_error(result, containing=reason)


@pytest.mark.parametrize("name", ["../x", "a/../../b", "/abs", "~/x", "bad\x00name", ".", ""])
def test_the_input_refuses_a_workspace_outside_the_root(name: str) -> None:
    with pytest.raises(ValidationError, match="bad workspace name"):
        AgentInput(task="t", model="m", workspace=name)


def test_a_named_workspace_is_normalised() -> None:
    assert AgentInput(task="t", model="m", workspace="team/./a/").workspace == "team/a"


@pytest.mark.parametrize(
    ("agent_id", "folder"),
    [("agent-1", "agent-1"), ("a/b", "a_b"), ("..", "_.."), (".", "_."), ("~x", "_~x")],
)
def test_an_agents_own_folder_is_one_safe_segment(agent_id: str, folder: str) -> None:
    assert own_workspace(agent_id) == folder
    assert AgentInput(task="t", model="m", workspace=folder).workspace == folder


def test_a_long_agent_id_gets_a_short_distinct_folder() -> None:
    one, two = own_workspace("x" * 900 + "1"), own_workspace("x" * 900 + "2")
    assert one != two and len(one) <= 200 and len(two) <= 200
    assert one.startswith("x" * 150)
