"""Run duragent's own processes (the CLI, a worker) from tests, as a user would."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.conftest import Harness


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
            sys.executable, "-m", "worker.cli", "worker", env=env, stdout=out, stderr=out
        )


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
        "worker.cli",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(stdin), within)
    assert proc.returncode is not None
    return Completed(proc.returncode, stdout, stderr)
