"""The ``duragent`` command as a user runs it: separate processes, real server."""

from __future__ import annotations

import pytest

from duragent.worker.devserver import free_port
from tests.conftest import Harness
from tests.processes import Completed, cli, worker_env


def one_line_error(result: Completed, *, containing: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one clear line, never a traceback
    assert lines[0].startswith("duragent: error: ")
    assert containing in lines[0]


async def test_run_wait_then_result(harness: Harness) -> None:
    task = harness.script(
        [
            {
                "tool_calls": [
                    {"name": "_write_file", "arguments": {"path": "a.txt", "content": "A"}}
                ]
            },
            {"tool_calls": [{"name": "_task_finish", "arguments": {"message": "wrote a.txt"}}]},
        ]
    )
    env = worker_env(harness)
    async with harness.worker():
        ran = await cli(env, "run", task, "--id", f"cli-{harness.task_queue}", "--wait")
        status = await cli(env, "status", f"cli-{harness.task_queue}")
    # A finished run's result is read from history: no worker needed.
    again = await cli(env, "result", f"cli-{harness.task_queue}")

    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == f"cli-{harness.task_queue}"  # the id comes first, for scripts
    assert "status: completed" in lines and "answer: wrote a.txt" in lines
    assert again.returncode == 0 and "answer: wrote a.txt" in again.stdout
    assert "status:  completed" in status.stdout.splitlines()
    assert (harness.folder(f"cli-{harness.task_queue}") / "a.txt").read_text() == "A"


async def test_run_without_wait_prints_only_the_id(harness: Harness) -> None:
    task = harness.script(
        [{"tool_calls": [{"name": "_task_finish", "arguments": {"message": "ok"}}]}]
    )
    ran = await cli(worker_env(harness), "run", task)  # no worker needed to start
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().startswith("agent-")
    assert len(ran.stdout.strip().splitlines()) == 1


async def test_max_cycles_exit_code_is_non_zero(harness: Harness) -> None:
    task = harness.script([{"tool_calls": [{"name": "_list_files", "arguments": {}}]}])
    async with harness.worker():
        ran = await cli(worker_env(harness), "run", task, "--max-cycles", "2", "--wait")
    assert ran.returncode == 1
    assert "status: max_cycles" in ran.stdout


async def test_unknown_id_is_one_clear_line(harness: Harness) -> None:
    result = await cli(worker_env(harness), "result", "no-such-agent")
    one_line_error(result, containing="no agent with id 'no-such-agent'")


async def test_same_id_after_the_run_ended_is_refused(harness: Harness) -> None:
    task = harness.script(
        [{"tool_calls": [{"name": "_task_finish", "arguments": {"message": "ok"}}]}]
    )
    env = worker_env(harness)
    agent_id = f"twice-{harness.task_queue}"
    async with harness.worker():
        assert (await cli(env, "run", task, "--id", agent_id, "--wait")).returncode == 0
    one_line_error(await cli(env, "run", task, "--id", agent_id), containing="already ran")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "x", "--max-cycles", "0"], "must be at least 1"),
        (["run", "x", "--max-cycles", "many"], "expected a whole number"),
        (["frobnicate"], "invalid choice"),
        (["result"], "the following arguments are required"),
    ],
)
async def test_bad_flags_are_one_clear_line(
    harness: Harness, args: list[str], message: str
) -> None:
    one_line_error(await cli(worker_env(harness), *args), containing=message)


async def test_unreachable_server_is_one_clear_line(harness: Harness) -> None:
    env = {**worker_env(harness), "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    one_line_error(await cli(env, "result", "x"), containing="cannot reach Temporal")


async def test_worker_without_llm_settings_is_one_clear_line(harness: Harness) -> None:
    env = worker_env(harness)
    del env["OPENAI_BASE_URL"], env["OPENAI_API_KEY"]
    one_line_error(await cli(env, "worker"), containing="no LLM configured")
