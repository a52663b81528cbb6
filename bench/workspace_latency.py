"""Latency of one file tool call per workspace backend: memory, local folder, object store.

Each call goes the way a worker runs it (``duragent.run_tool`` in an
ActivityEnvironment, arguments parsed, result built); the object store is a real
SeaweedFS S3 server on loopback, started through ``tests/objectstore.py`` (built from
the Go module proxy the first time). The workspace holds 200 Python-like files of
about 4 KB under ``src/``; the table shows the median and the 95th percentile per call.
Numbers only: nothing here asserts a time.

    uv run python -m bench.workspace_latency [--repeat 50] [--files 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from duragent.activities.models import ToolCall, ToolRequest, ToolStatus
from duragent.activities.tools import (
    LocalWorkspace,
    MemoryWorkspace,
    ToolRegistry,
    Workspace,
    default_tools,
)
from duragent.activities.tools.activity import ToolActivities
from duragent.activities.tools.objectstore_workspace import S3Workspace
from tests.objectstore import ObjectStoreServer

# (label, tool, arguments); ``{i}`` is the repetition, so writes do not hit one key only.
CALLS: list[tuple[str, str, dict[str, object]]] = [
    ("read", "_read_file", {"path": "src/module_042.py"}),
    (
        "read lines 10-20",
        "_read_file",
        {"path": "src/module_042.py", "start_line": 10, "end_line": 20},
    ),
    ("write", "_write_file", {"path": "out/note_{i}.md", "content": "# note\n" * 50}),
    ("append", "_write_file", {"path": "out/log.md", "content": "one more line\n", "append": True}),
    (
        "str_replace",
        "_file_str_replace",
        {"path": "src/module_007.py", "old": "VALUE = ", "new": "VALUE  = "},
    ),
    ("file info", "_file_info", {"path": "src/module_042.py"}),
    ("list folder", "_list_files", {"path": "src"}),
    ("list glob *.py", "_list_files", {"glob": "*.py"}),
    ("grep 200 files", "_workspace_grep", {"pattern": r"def handler_\d+7\b"}),
]


def module_text(n: int) -> str:
    """About 4 KB of Python-looking text."""
    body = "\n".join(
        f"def handler_{n * 100 + k}(event):\n    return event.get('k{k}', {k})\n" for k in range(40)
    )
    return f'"""Module {n}."""\n\nVALUE = {n}\n\n{body}\n'


async def seed(workspace: Workspace, files: int) -> None:
    async def one(n: int) -> None:
        await workspace.write_text(f"src/module_{n:03}.py", module_text(n))

    await asyncio.gather(*(one(n) for n in range(files)))


async def time_call(tools: ToolActivities, name: str, arguments: dict[str, object]) -> float:
    request = ToolRequest(
        call=ToolCall(id="c", name=name, arguments=json.dumps(arguments)),
        idempotency_key="bench:c",
        large_result_chars=10**9,
    )
    started = time.perf_counter()
    result = await ActivityEnvironment().run(tools.run_tool, request)
    elapsed = time.perf_counter() - started
    if result.status is not ToolStatus.SUCCESS:
        raise RuntimeError(f"{name} failed: {result.content}")
    return elapsed


async def measure(workspace: Workspace, files: int, repeat: int) -> dict[str, list[float]]:
    await seed(workspace, files)
    tools = ToolActivities(ToolRegistry(default_tools()), workspace)
    times: dict[str, list[float]] = {}
    for label, name, arguments in CALLS:
        samples = times.setdefault(label, [])
        for i in range(repeat):
            filled = {k: v.format(i=i) if isinstance(v, str) else v for k, v in arguments.items()}
            if name == "_file_str_replace" and i % 2:  # undo the last one, so it always finds
                filled = {**filled, "old": arguments["new"], "new": arguments["old"]}
            samples.append(await time_call(tools, name, filled))
    return times


def report(results: dict[str, dict[str, list[float]]]) -> None:
    backends = list(results)
    header = f"{'tool call':<18}" + "".join(f"{b:>24}" for b in backends)
    print(header)
    print(f"{'':<18}" + "".join(f"{'median / p95 (ms)':>24}" for _ in backends))
    for label, _, _ in CALLS:
        cells = []
        for backend in backends:
            samples = sorted(results[backend][label])
            p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
            cells.append(f"{statistics.median(samples) * 1000:>10.2f} / {p95 * 1000:<9.2f}")
        print(f"{label:<18}" + "".join(f"{c:>24}" for c in cells))


async def run(files: int, repeat: int, server: ObjectStoreServer) -> None:
    results: dict[str, dict[str, list[float]]] = {}
    results["memory"] = await measure(MemoryWorkspace(), files, repeat)
    with tempfile.TemporaryDirectory() as tmp:
        results["local"] = await measure(LocalWorkspace(Path(tmp)), files, repeat)
    config = server.config(server.create_bucket(), "agents/bench")
    results["object store"] = await measure(S3Workspace(config), files, repeat)
    print(f"{files} files of ~4 KB under src/, {repeat} calls each; object store: SeaweedFS")
    print(f"S3 gateway at {server.endpoint} (loopback)\n")
    report(results)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workspace_latency", description=__doc__)
    parser.add_argument("--repeat", type=int, default=50, help="calls per tool (default 50)")
    parser.add_argument("--files", type=int, default=200, help="files in the workspace")
    args = parser.parse_args(argv)
    with ObjectStoreServer() as server:
        asyncio.run(run(args.files, args.repeat, server))


if __name__ == "__main__":
    main()
