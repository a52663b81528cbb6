"""Malformed ``duragent`` invocations, each run as its own process against a real server.

Every one must end the way a user mistake ends: exit code 2, exactly one line on
stderr that says what is wrong, never a traceback, nothing started.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from duragent.worker.cli_args import AGENT_STATUSES, MAX_TASK_BYTES, built_in_tools
from duragent.workflows.models import AgentStatus
from tests.conftest import Harness
from tests.processes import cli, worker_env

NOT_UTF8 = b"caf\xe9 \xff"
HUGE = "x" * 120_000  # one argument above the text bounds, below the OS cap of 128 KiB

# (invocation, a piece of the one line on stderr)
MALFORMED: list[tuple[list[str | bytes], str]] = [
    # run: the task
    (["run", ""], "the task must not be empty"),
    (["run", "   \t "], "the task must not be empty"),
    (["run"], "no task"),
    (["run", NOT_UTF8], "the task is not valid UTF-8"),
    (["run", "x", "--task-file", "/no/such/file"], "give the task or --task-file, not both"),
    (["run", "--task-file", "/no/such/file"], "cannot read the task file"),
    (["run", "--task-file", "/"], "cannot read the task file"),
    (["run", "x", "--task-file", "-"], "not both"),
    # run: the id
    (["run", "x", "--id", ""], "the agent id must not be empty"),
    (["run", "x", "--id", "   "], "the agent id must not be empty"),
    (["run", "x", "--id", NOT_UTF8], "the agent id is not valid UTF-8"),
    (["run", "x", "--id", "a\x1b[31mred"], "contains control characters"),
    (["run", "x", "--id", "line\nbreak"], "contains control characters"),
    (["run", "x", "--id", " padded"], "must not start or end with spaces"),
    (["run", "x", "--id", "i" * 1001], "at most 1000"),
    (["run", "x", "--id"], "expected one argument"),
    # run: the tools and numbers
    (["run", "x", "--tools", ""], "--tools names no tool"),
    (["run", "x", "--tools", ",,"], "--tools names no tool"),
    (["run", "x", "--tools", "_bash,,_read_file"], "empty name"),
    (["run", "x", "--tools", "_bash,_bash"], "_bash more than once"),
    (["run", "x", "--tools", "rm -rf"], "not a tool name"),
    (["run", "x", "--tools", "t" * 65], "not a tool name"),
    (["run", "x", "--max-cycles", "0"], "must be at least 1"),
    (["run", "x", "--max-cycles", "-3"], "must be at least 1"),
    (["run", "x", "--max-cycles", "1e3"], "expected a whole number"),
    (["run", "x", "--max-cycles", ""], "expected a whole number"),
    (["run", "x", "--model", ""], "--model must not be empty"),
    (["run", "x", "--model", "m" * 201], "at most 200"),
    (["run", "x", "--owner", "\x07bell"], "contains control characters"),
    (["run", "x", "--system-prompt", " "], "--system-prompt must not be empty"),
    (["run", "x", "--system-prompt", HUGE], "at most 100,000"),
    (["run", "x", "--wait=yes"], "ignored explicit argument"),
    (["run", "x", "--frobnicate"], "unrecognized arguments"),
    # reading commands
    (["transcript", "a", "--limit", "501"], "must be at most 500"),
    (["transcript", "a", "--limit", "0"], "must be at least 1"),
    (["transcript", "a", "--offset", "-1"], "must be at least 0"),
    (["transcript", "a", "--offset", "ten"], "expected a whole number"),
    (["ls", "--status", "sleeping"], "invalid choice"),
    (["ls", "--limit", "99999999999999999999"], "must be at most 10000"),
    (["ls", "--owner", ""], "--owner must not be empty"),
    (["ls", "--json", "extra"], "unrecognized arguments"),
    (["status"], "the following arguments are required"),
    (["status", ""], "the agent id must not be empty"),
    (["status", NOT_UTF8], "not valid UTF-8"),
    (["pending", "a\tb"], "contains control characters"),
    (["usage", "a", "--limit", "3"], "unrecognized arguments"),
    (["todos"], "the following arguments are required"),
    (["watch", "a", "--offset", "-1"], "must be at least 0"),
    (["watch", "a", "--json", "extra"], "unrecognized arguments"),
    # answering and steering
    (["say", "a", ""], "the message must not be empty"),
    (["say", "a", "\n\n"], "the message must not be empty"),
    (["say", "a", HUGE], "at most 32,768"),
    (["say", "a"], "the following arguments are required"),
    (["reply", "a", ""], "the answer must not be empty"),
    (["reply", "a", "ok", "--question-id", ""], "--question-id must not be empty"),
    (["reply", "a", NOT_UTF8], "the answer is not valid UTF-8"),
    (["approve", "a"], "the following arguments are required"),
    (["approve", "a", ""], "the call id must not be empty"),
    (["reject", "a", "c", "--message", ""], "--message must not be empty"),
    (["edit", "a", "c", "{bad json"], "not valid JSON"),
    (["edit", "a", "c", "[1, 2]"], "must be a JSON object, got list"),
    (["edit", "a", "c", '"text"'], "must be a JSON object, got str"),
    (["edit", "a", "c", ""], "the arguments must not be empty"),
    (["cancel", "a", "--reason", ""], "--reason must not be empty"),
    (["retry", "a", "--reason", "r" * 1001], "at most 1,000"),
    # the command itself
    ([], "the following arguments are required"),
    (["frobnicate"], "invalid choice"),
    (["--frobnicate"], "the following arguments are required"),
    (["server", "--port", "70000"], "must be at most 65535"),
]

# Mistakes only the server can tell (the parser accepts them).
NEEDS_SERVER: list[tuple[list[str | bytes], str]] = [
    (["result", "no-such-agent"], "no agent with id 'no-such-agent'"),
    (["status", "no-such-agent"], "no agent with id 'no-such-agent'"),
    (["say", "no-such-agent", "hello"], "no agent with id 'no-such-agent'"),
    (["reply", "no-such-agent", "blue"], "no agent with id 'no-such-agent'"),
    (["approve", "no-such-agent", "call_1"], "no agent with id 'no-such-agent'"),
    (["todos", "no-such-agent", "--json"], "no agent with id 'no-such-agent'"),
    (["retry", "no-such-agent"], "no agent with id 'no-such-agent'"),
]

BAD_ADDRESSES = ["::::", "localhost:notaport", "a b:7233", "http://x:y"]


async def duragent(
    env: dict[str, str], args: list[str | bytes], stdin: bytes = b""
) -> tuple[int, str, str]:
    done = await cli(env, *args, stdin=stdin, within=60)
    return done.returncode, done.stdout, done.stderr


def assert_one_clear_line(result: tuple[int, str, str], containing: str, what: object) -> None:
    code, out, err = result
    assert "Traceback" not in err and "Traceback" not in out, (what, err)
    assert code == 2, (what, code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, (what, err)
    assert lines[0].startswith("duragent: error: "), (what, err)
    assert containing in lines[0], (what, lines[0])
    assert out == "", (what, out)  # no agent id printed: nothing was started


async def run_all(
    env: dict[str, str], table: list[tuple[list[str | bytes], str]], parallel: int
) -> None:
    limit = asyncio.Semaphore(parallel)

    async def one(args: list[str | bytes]) -> tuple[int, str, str]:
        async with limit:
            return await duragent(env, args)

    results = await asyncio.gather(*(one(args) for args, _ in table))
    failures = []
    for (args, containing), result in zip(table, results, strict=True):
        try:
            assert_one_clear_line(result, containing, args)
        except AssertionError as err:
            failures.append(f"{[a if len(a) < 80 else a[:20] for a in args]}: {err}")
    assert not failures, "\n".join(failures)


async def test_malformed_invocations(harness: Harness) -> None:
    await run_all(worker_env(harness), MALFORMED, parallel=4)


async def test_mistakes_the_server_reveals(harness: Harness) -> None:
    await run_all(worker_env(harness), NEEDS_SERVER, parallel=2)


@pytest.mark.parametrize("address", BAD_ADDRESSES)
async def test_unparsable_temporal_address(harness: Harness, address: str) -> None:
    env = {**worker_env(harness), "TEMPORAL_ADDRESS": address}
    assert_one_clear_line(
        await duragent(env, ["status", "x"]), "is not a Temporal address", address
    )


@pytest.mark.parametrize(
    ("stdin", "containing"),
    [
        (b"", "the task on standard input must not be empty"),
        (b" \n\t\n", "the task on standard input must not be empty"),
        (NOT_UTF8, "the task on standard input is not valid UTF-8"),
        (b"nul \x00 inside", "contains a NUL character"),
        (b"y" * (MAX_TASK_BYTES + 1), "at most 1,000,000"),
    ],
)
async def test_bad_task_on_standard_input(harness: Harness, stdin: bytes, containing: str) -> None:
    result = await duragent(worker_env(harness), ["run", "-"], stdin=stdin)
    assert_one_clear_line(result, containing, stdin[:20])


async def test_bad_task_file(harness: Harness, tmp_path: Path) -> None:
    task = tmp_path / "task.md"
    task.write_bytes(NOT_UTF8)
    result = await duragent(worker_env(harness), ["run", "--task-file", str(task)])
    assert_one_clear_line(result, "is not valid UTF-8", task)
    os.chmod(task, 0)
    if os.access(task, os.R_OK):  # root reads anything: an empty file instead
        task.write_bytes(b"")
        containing = "must not be empty"
    else:
        containing = "Permission denied"
    result = await duragent(worker_env(harness), ["run", "--task-file", str(task)])
    assert_one_clear_line(result, containing, task)


def test_the_parser_knows_every_agent_status() -> None:
    # The parser lists the statuses without importing the models; they must agree.
    assert AGENT_STATUSES == tuple(s.value for s in AgentStatus)
    assert {"_bash", "_task_finish", "_create_sub_task", "_compress_memory"} <= built_in_tools()


def test_the_cli_bounds_are_the_workflows() -> None:
    from duragent.activities import limits
    from duragent.worker import cli_args

    assert cli_args.MAX_MESSAGE_BYTES == limits.MAX_SAY_BYTES == limits.MAX_REPLY_BYTES
    assert cli_args.MAX_REJECT_BYTES == limits.MAX_DECISION_MESSAGE_BYTES
    assert cli_args.MAX_TEXT_BYTES <= limits.MAX_EDITED_ARGUMENTS_BYTES
