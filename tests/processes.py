"""Run duragent's own processes (the CLI, a worker) from tests, as a user would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import temporalio.api.taskqueue.v1 as taskqueue
import temporalio.api.workflowservice.v1 as workflow_service
from temporalio.api.enums.v1 import DescribeTaskQueueMode, TaskQueueType
from temporalio.client import Client

from tests.conftest import Harness

# A worker with nothing in flight exits within a second of SIGTERM; one that does not
# within this is stuck, and SIGKILL ends it so the test's teardown cannot hang.
STOP_GRACE_SECONDS = 30.0


def worker_env(h: Harness) -> dict[str, str]:
    """The environment a worker or CLI process of this test runs with."""
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": h.client.service_client.config.target_host,
        "OPENAI_BASE_URL": h.llm.base_url,
        "OPENAI_API_KEY": "test-key",
        "DURAGENT_TASK_QUEUE": h.task_queue,
        "DURAGENT_WORKSPACE": str(h.workspace),
        "DURAGENT_MODEL": "scripted",
    }


async def spawn_worker(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "duragent.worker.cli", "worker", env=env, stdout=out, stderr=out
        )


async def stop_process(proc: asyncio.subprocess.Process, grace: float = STOP_GRACE_SECONDS) -> int:
    """SIGTERM, SIGKILL after ``grace`` seconds, reap.

    Never raises for a process that already ended: it is for ``finally`` blocks.

    Returns:
        The exit code (negative: the signal that ended it).
    """
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    return await proc.wait()


def worker_pid(identity: str) -> int | None:
    """The process id in a worker's default identity (``pid@host``), if it has one."""
    head, _, _ = identity.partition("@")
    return int(head) if head.isdigit() else None


async def polling_pids(client: Client, task_queue: str) -> set[int]:
    """Processes that poll both the workflow and the activity tasks of a queue.

    Asked in the enhanced mode, which gathers the pollers of every partition of the
    queue: the plain one lists the root partition's only, where a worker's pollers may
    never land (a second worker's activity pollers stayed unlisted for 30 s on the dev
    server). The server lists pollers seen in the last minutes, so a worker that just
    died may still be among them: this is for waiting until workers have started.
    """
    described = await client.workflow_service.describe_task_queue(
        workflow_service.DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=taskqueue.TaskQueue(name=task_queue),
            api_mode=DescribeTaskQueueMode.DESCRIBE_TASK_QUEUE_MODE_ENHANCED,
            task_queue_types=[
                TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            ],
            report_pollers=True,
        )
    )
    unversioned = described.versions_info[""].types_info
    polling = [
        {pid for p in unversioned[kind].pollers if (pid := worker_pid(p.identity))}
        for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
    ]
    return polling[0] & polling[1]


def log_tail(log: Path, lines: int = 30) -> str:
    """The last lines of a process's log, with a header naming the file."""
    try:
        text = log.read_text(errors="replace")
    except OSError as err:
        return f"(no log at {log}: {err})"
    return f"{log} (tail):\n" + "\n".join(text.splitlines()[-lines:])


class Completed:
    """A finished CLI process."""

    def __init__(self, returncode: int, stdout: bytes, stderr: bytes) -> None:
        self.returncode = returncode
        self.stdout = stdout.decode(errors="replace")
        self.stderr = stderr.decode(errors="replace")


async def cli(
    env: dict[str, str], *args: str | bytes, stdin: bytes | None = None, within: float = 120
) -> Completed:
    """Run ``duragent ARGS`` as its own process, with ``stdin`` as its standard input."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "duragent.worker.cli",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(stdin), within)
    assert proc.returncode is not None
    return Completed(proc.returncode, stdout, stderr)
