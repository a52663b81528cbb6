"""``duragent serve`` as a process for tests, an HTTP client for it, and an SSE reader."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from tests.conftest import Harness, eventually
from tests.processes import log_tail, stop_process, worker_env

TOKEN = "test-token-" + "0123456789abcdef"
"""The token the test server requires (DURAGENT_API_TOKEN)."""
_LISTENING = re.compile(r"API at (http://\S+)/api/v1")


@dataclass
class Served:
    """A running ``duragent serve``: its base URL, its log, and a client with the token."""

    url: str
    log: Path
    http: httpx2.AsyncClient

    def tail(self) -> str:
        """The server's last log lines, for an assertion's message."""
        return log_tail(self.log)


@contextlib.asynccontextmanager
async def serve(h: Harness, log: Path, *, token: str | None = TOKEN) -> AsyncIterator[Served]:
    """``duragent serve --port 0`` for the harness's task queue, until the block ends."""
    env = {**worker_env(h), "DURAGENT_OWNER": "tester"}
    env.pop("DURAGENT_API_TOKEN", None)
    if token is not None:
        env["DURAGENT_API_TOKEN"] = token
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "duragent.worker.cli", "serve", "--port", "0",
            env=env, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        url = await eventually(lambda: _url(log, proc), "duragent serve listening", within=30)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        async with httpx2.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            yield Served(url, log, http)
    finally:
        await stop_process(proc)


def _url(log: Path, proc: asyncio.subprocess.Process) -> str | None:
    if proc.returncode is not None:
        raise AssertionError(f"duragent serve exited {proc.returncode}\n{log_tail(log)}")
    found = _LISTENING.search(log.read_text(errors="replace"))
    return found.group(1) if found else None


@dataclass
class SSE:
    """One Server-Sent Events message."""

    event: str
    id: str | None
    data: dict[str, Any]


async def read_sse(
    http: httpx2.AsyncClient, path: str, *, until: str, headers: dict[str, str] | None = None
) -> list[SSE]:
    """The messages of an event stream up to the first of type ``until`` (included)."""
    messages: list[SSE] = []
    async with http.stream("GET", path, headers=headers or {}) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for message in sse_messages(response):
            messages.append(message)
            if message.event == until:
                break
    return messages


async def sse_messages(response: httpx2.Response) -> AsyncIterator[SSE]:
    """Parse a text/event-stream body into messages (comments and ``retry:`` skipped)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line:
            name, _, value = line.partition(":")
            if name:  # a line starting ":" is a comment (the keep-alives)
                fields[name] = value.removeprefix(" ")
            continue
        if "data" in fields:
            yield SSE(fields.get("event", "message"), fields.get("id"), json.loads(fields["data"]))
        fields = {}
