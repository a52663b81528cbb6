"""Graph tasks: the decorator, the registry, the activity alone, and a worker that loads them."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import sys
import threading
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from duragent.activities.errors import TaskErrorType
from duragent.activities.models import TaskRequest, TaskResult
from duragent.activities.tasks import (
    MARK,
    TaskActivities,
    TaskError,
    TaskRegistry,
    current_call,
    task,
    task_ref,
)
from duragent.activities.tools import ToolContext, default_tools, tool
from duragent.worker.devserver import free_port
from duragent.worker.plugin import ModuleLoadError, load_modules, worker_activities
from duragent.worker.settings import Settings, SettingsError
from examples.graphs import tasks as example
from tests.conftest import Harness, eventually
from tests.processes import cli, log_tail, polling_pids, stop_process, worker_env

EXAMPLE_REFS = ["examples.graphs.tasks:slugify", "examples.graphs.tasks:word_count"]


@task(name="tests.tasks:shout")
def shout(text: str) -> str:
    """Upper-case text, in a thread; says which thread and call it ran in."""
    call = current_call()
    return f"{text.upper()} ({call.idempotency_key}, attempt {call.attempt}, {_thread()})"


@task(name="tests.tasks:slow_sum")
async def slow_sum(numbers: list[float], pause: float = 0.0) -> float:
    """Sum numbers after a pause, on the event loop."""
    await asyncio.sleep(pause)  # the work the task does (ok)
    return math.fsum(numbers)


@task(name="tests.tasks:give")
def give(kind: str) -> Any:
    """Return something of ``kind``: JSON or not, small or not, or fail."""
    if kind == "refuse":
        raise TaskError("the title is empty")
    if kind == "flaky":
        raise TaskError("the service is busy", retryable=True)
    if kind == "crash":
        raise KeyError("missing")
    values: dict[str, Any] = {
        "set": {"items": [1, {2, 3}]},
        "datetime": datetime(2025, 1, 1, tzinfo=UTC),
        "int_key": {1: "one"},
        "nan": [math.nan],
        "model": Point(x=1, y=2),
        "big": "x" * (256 * 1024),
        "fits": "x" * (256 * 1024 - 2),  # the quotes make it 256 KiB of JSON
    }
    return values[kind]


@task()
def plain() -> int:
    """Nothing but a task declared with parentheses."""
    return 1


class Point(BaseModel):
    x: int
    y: int


def _thread() -> str:
    return "main thread" if threading.current_thread() is threading.main_thread() else "worker"


def activities() -> TaskActivities:
    return TaskActivities(TaskRegistry([shout, slow_sum, give]))


async def run(request: TaskRequest, env: ActivityEnvironment | None = None) -> TaskResult:
    return await (env or ActivityEnvironment()).run(activities().run_task, request)


async def refused(request: TaskRequest) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await run(request)
    return caught.value


# --- the decorator and the registry ----------------------------------------------------


def test_a_task_is_marked_with_its_ref_and_stays_callable() -> None:
    assert task_ref(example.word_count) == "examples.graphs.tasks:word_count"
    assert task_ref(shout) == "tests.tasks:shout"
    assert example.slugify("Tides of the North Sea!") == "tides-of-the-north-sea"
    assert getattr(plain, MARK) == "tests.test_tasks:plain" and plain() == 1
    assert task_ref(len) is None and task_ref("text") is None


def test_a_ref_no_worker_could_import_is_refused_when_it_is_declared() -> None:
    def inner() -> None: ...

    with pytest.raises(ValueError, match=r"does not read module:function; name it"):
        task(inner)  # defined in a function: its qualname holds <locals>
    with pytest.raises(ValueError, match="'no colon' does not read module:function"):
        task(name="no colon")(inner)


def test_the_registry_refuses_unmarked_functions_and_two_functions_of_one_ref() -> None:
    with pytest.raises(ValueError, match="is not a task: mark it with @task"):
        TaskRegistry([len])

    @task(name="tests.tasks:shout")
    def impostor(text: str) -> str:
        return text

    with pytest.raises(
        ValueError, match=r"two functions are registered as task 'tests\.tasks:shout'"
    ):
        TaskRegistry([shout, impostor])
    assert TaskRegistry([shout, shout]).refs == ["tests.tasks:shout"]  # the same one: once


def test_the_registry_is_built_by_scanning_modules() -> None:
    again = types.ModuleType("reexports")
    again.word_count = example.word_count  # type: ignore[attr-defined]  # imported elsewhere
    again.helper = len  # type: ignore[attr-defined]
    registry = TaskRegistry.from_modules([example, again])
    assert registry.refs == EXAMPLE_REFS
    assert TaskActivities(registry).known_tasks == set(EXAMPLE_REFS)


# --- the activity ----------------------------------------------------------------------


async def test_a_sync_task_runs_in_a_thread_and_sees_its_call() -> None:
    result = await run(
        TaskRequest(ref="tests.tasks:shout", args={"text": "hi"}, idempotency_key="g:n@1")
    )
    assert result == TaskResult(value="HI (g:n@1, attempt 1, worker)", attempt=1)


async def test_an_async_task_heartbeats_while_it_runs() -> None:
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    # A heartbeat every 0.05 s (a third of the timeout): several within the task's 0.2 s.
    env.info = dataclasses.replace(env.info, attempt=2, heartbeat_timeout=timedelta(seconds=0.15))
    request = TaskRequest(ref="tests.tasks:slow_sum", args={"numbers": [1.5, 2.25], "pause": 0.2})
    result = await run(request, env)
    assert result == TaskResult(value=3.75, attempt=2)
    assert beats  # cancellation can reach it


async def test_an_unknown_ref_fails_at_once_naming_the_known_ones() -> None:
    err = await refused(TaskRequest(ref="examples.graphs.tasks:word_count"))
    assert err.type == TaskErrorType.UNKNOWN.value and err.non_retryable
    assert "no task 'examples.graphs.tasks:word_count' on this worker" in err.message
    assert "(it runs: tests.tasks:give, tests.tasks:shout, tests.tasks:slow_sum)" in err.message
    assert "--load MODULE" in err.message


async def test_arguments_that_do_not_fit_fail_at_once_before_the_call() -> None:
    err = await refused(TaskRequest(ref="tests.tasks:shout", args={"txt": "hi"}))
    assert err.type == TaskErrorType.BAD_ARGUMENTS.value and err.non_retryable
    assert (
        "its arguments (txt) do not fit shout(text): missing a required argument: 'text'"
        in err.message
    )


async def test_task_error_is_not_retried_unless_it_says_so() -> None:
    err = await refused(TaskRequest(ref="tests.tasks:give", args={"kind": "refuse"}))
    assert (err.type, err.non_retryable) == (TaskErrorType.FAILED.value, True)
    assert err.message == "task tests.tasks:give failed: the title is empty"
    err = await refused(TaskRequest(ref="tests.tasks:give", args={"kind": "flaky"}))
    assert (err.type, err.non_retryable) == (TaskErrorType.FAILED.value, False)


async def test_any_other_exception_is_left_to_the_retry_policy() -> None:
    with pytest.raises(KeyError, match="missing"):
        await run(TaskRequest(ref="tests.tasks:give", args={"kind": "crash"}))


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("set", "returned a set at ['items'][1], which is not JSON"),
        ("datetime", "returned a datetime, which is not JSON"),
        ("int_key", "returned an int as a dict key at [1]"),
        ("nan", "returned NaN or infinity, which is not JSON"),
        ("model", "returned a Point, which is not JSON"),
    ],
)
async def test_a_result_that_is_not_json_fails_at_once_saying_why(kind: str, says: str) -> None:
    err = await refused(TaskRequest(ref="tests.tasks:give", args={"kind": kind}))
    assert err.type == TaskErrorType.NOT_JSON.value and err.non_retryable
    assert says in err.message
    assert "model_dump(mode='json')" in err.message


async def test_a_result_over_256_kib_fails_at_once_saying_the_bound() -> None:
    fits = await run(TaskRequest(ref="tests.tasks:give", args={"kind": "fits"}))
    assert fits.value == "x" * (256 * 1024 - 2)
    err = await refused(TaskRequest(ref="tests.tasks:give", args={"kind": "big"}))
    assert err.type == TaskErrorType.TOO_LARGE.value and err.non_retryable
    assert "the result of task tests.tasks:give is 262,146 bytes" in err.message
    assert "256 KiB" in err.message


def test_current_call_outside_a_task_says_so() -> None:
    with pytest.raises(RuntimeError, match="only available inside a running task"):
        current_call()


# --- loading modules into a worker -----------------------------------------------------


class Words(BaseModel):
    text: str


@tool()
async def count_words(args: Words, ctx: ToolContext) -> str:
    """Count the words of a text."""
    return str(len(args.text.split()))


@tool(name="_bash")
async def fake_bash(args: Words, ctx: ToolContext) -> str:
    """A tool taking a built-in tool's name."""
    return ""


def module(monkeypatch: pytest.MonkeyPatch, name: str, **attributes: Any) -> types.ModuleType:
    made = types.ModuleType(name)
    made.__dict__.update(attributes)
    monkeypatch.setitem(sys.modules, name, made)  # importable by name, as --load imports it
    return made


def test_loading_modules_finds_their_tasks_and_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    bash = next(t for t in default_tools() if t.name == "_bash")
    mine = module(monkeypatch, "tests_loaded_tools", count_words=count_words, bash=bash)
    loaded = load_modules(["examples.graphs.tasks", mine.__name__, "examples.graphs.tasks"])
    assert [m.__name__ for m in loaded.modules] == ["examples.graphs.tasks", mine.__name__]
    assert sorted(task_ref(t) or "" for t in loaded.tasks) == EXAMPLE_REFS
    assert loaded.tools == (count_words,)  # a re-exported built-in is not loaded twice
    assert [t.name for t in loaded.all_tools() or []][-1] == "count_words"
    assert loaded.summary() == (
        "loaded examples.graphs.tasks, tests_loaded_tools: tasks "
        "examples.graphs.tasks:slugify, examples.graphs.tasks:word_count; tools count_words"
    )


def test_a_tool_with_a_built_in_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    mine = module(monkeypatch, "tests_clashing_tools", fake_bash=fake_bash)
    with pytest.raises(ModuleLoadError, match="tool '_bash' has the name of a built-in"):
        load_modules([mine.__name__])


@pytest.mark.parametrize(
    ("name", "source", "says"),
    [
        ("tests_absent", None, "cannot load module '{name}': no module named '{name}'"),
        (
            "tests_needs",
            "import no_such_dep_x\n",
            "it imports 'no_such_dep_x', which is not installed",
        ),
        (
            "tests_typo",
            "def broken(:\n",
            "cannot load module '{name}': SyntaxError: invalid syntax",
        ),
        ("tests_raises", "raise RuntimeError('boom\\nmore')\n", "'{name}': RuntimeError: boom"),
    ],
)
def test_a_module_that_does_not_load_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str | None, says: str
) -> None:
    if source is not None:
        (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleLoadError) as caught:
        load_modules([name])
    assert says.format(name=name) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_duragent_load_is_read_and_checked() -> None:
    assert Settings.from_env({"DURAGENT_LOAD": " a.b , c,a.b "}).load == ("a.b", "c")
    assert Settings.from_env({}).load == ()
    with pytest.raises(SettingsError, match=r"DURAGENT_LOAD: 'tasks\.py/x' is not a module name"):
        Settings.from_env({"DURAGENT_LOAD": "tasks.py/x"})


def test_every_worker_registers_the_task_activity(tmp_path: Path) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url="http://127.0.0.1:9", api_key="x", max_retries=0)
    methods = worker_activities(client=client, workspace=tmp_path, tasks=[example.slugify])
    owners = [getattr(m, "__self__", None) for m in methods]
    runners = [
        (m, o) for m, o in zip(methods, owners, strict=True) if isinstance(o, TaskActivities)
    ]
    assert [m.__name__ for m, _ in runners] == ["run_task", "list_tasks"]
    assert runners[0][1].known_tasks == {"examples.graphs.tasks:slugify"}


# --- the worker process ----------------------------------------------------------------


async def test_worker_load_of_a_bad_module_is_one_line_before_connecting(harness: Harness) -> None:
    # No server at this address: the module is reported, not the connection.
    env = {**worker_env(harness), "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    for args, says in [
        (
            ["--load", "no_such_module_zz"],
            "cannot load module 'no_such_module_zz': no module named",
        ),
        (["--load", "tasks.py"], "give a module's name, not its file's ('tasks')"),
        (["--load", "my/tasks"], "argument --load: 'my/tasks' is not a module name"),
    ]:
        done = await cli(env, "worker", *args, within=60)
        assert done.returncode == 2, (done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("duragent: error: "), done.stderr
        assert says in lines[0]
    bad_env = await cli({**env, "DURAGENT_LOAD": "a b"}, "worker", within=60)
    assert bad_env.returncode == 2
    assert "DURAGENT_LOAD: 'a b' is not a module name" in bad_env.stderr


async def test_a_worker_started_with_load_registers_the_example_tasks(
    harness: Harness, tmp_path: Path
) -> None:
    log = tmp_path / "duragent.worker.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "duragent.worker.cli",
            "worker",
            "--load",
            "examples.graphs.tasks",
            env=worker_env(harness),
            stdout=out,
            stderr=out,
        )
    try:
        await eventually(
            lambda: _polls(harness, proc.pid), "the worker polls", within=60, interval=0.2
        )
        text = log.read_text()
        assert (
            "loaded examples.graphs.tasks: tasks examples.graphs.tasks:slugify, "
            "examples.graphs.tasks:word_count; tools none"
        ) in text, log_tail(log)
    finally:
        assert await stop_process(proc) == 0, log_tail(log)


async def _polls(h: Harness, pid: int) -> bool:
    return pid in await polling_pids(h.client, h.task_queue)
