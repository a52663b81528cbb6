"""The durable floor: the plainest Temporal agent loop, for ``bench.cycle_cost`` to beat.

One workflow keeps the transcript in its state; each cycle runs one LLM activity that
gets the **whole transcript** (what most engines ship) and calls an OpenAI-compatible
endpoint through the real ``openai`` client, then one tool activity per tool call. No
streaming, no heartbeats, no store, no telemetry: nothing a loop could leave out.

Run its worker as its own process, so its CPU and memory can be read from ``/proc``::

    python -m bench.bare_loop ADDRESS TASK_QUEUE OPENAI_BASE_URL WORKDIR
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from openai import AsyncOpenAI

WORKFLOW = "BareLoop"
LLM_ACTIVITY = "bare.llm_chat"
TOOL_ACTIVITY = "bare.run_tool"

# The ordinary settings of a simple loop: no heartbeat, so a worker that dies mid-call
# is noticed when the start-to-close timeout passes.
_LLM_TIMEOUT = timedelta(seconds=60)
_TOOL_TIMEOUT = timedelta(seconds=30)
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1))

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "_write_file",
            "description": "Write (or append to) a file.",
            "parameters": {
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "content": {"type": "string"},
                    "append": {"type": "boolean"},
                },
                "required": ["path", "content"],
            },
        },
    }
]


@dataclass
class BareInput:
    """The loop's input."""

    task: str
    cycles: int
    model: str = "scripted"
    system_prompt: str = "You are a helpful agent. Use the tools."


@dataclass
class LLMRequest:
    """The LLM activity's input: the whole transcript."""

    model: str
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ToolRequest:
    """The tool activity's input: one call."""

    workflow_id: str
    name: str
    arguments: str


class BareActivities:
    """The two activities, holding one OpenAI client and the tools' folder."""

    def __init__(self, client: AsyncOpenAI, workdir: Path) -> None:
        """Keep the client and the folder."""
        self._client = client
        self._workdir = workdir

    @activity.defn(name=LLM_ACTIVITY)
    async def llm_chat(self, request: LLMRequest) -> dict[str, Any]:
        """One chat completion with the whole transcript; the assistant message."""
        response = await self._client.chat.completions.create(
            model=request.model,
            messages=request.messages,  # type: ignore[arg-type]
            tools=TOOLS,  # type: ignore[arg-type]
        )
        message = response.choices[0].message.model_dump(exclude_none=True)
        return dict(message)

    @activity.defn(name=TOOL_ACTIVITY)
    async def run_tool(self, request: ToolRequest) -> str:
        """Run one tool call: ``_write_file`` in the workflow's own folder."""
        args = json.loads(request.arguments or "{}")
        if request.name != "_write_file":
            return f"unknown tool {request.name}"
        folder = self._workdir / request.workflow_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / Path(str(args.get("path", "out.txt"))).name
        content = str(args.get("content", ""))
        with path.open("a" if args.get("append") else "w", encoding="utf-8") as handle:
            handle.write(content)
        return f"wrote {len(content)} characters to {path.name}"


@workflow.defn(name=WORKFLOW)
class BareLoop:
    """Cycles of one LLM call with the whole transcript and its tool calls."""

    @workflow.run
    async def run(self, input: BareInput) -> int:
        """Run ``input.cycles`` cycles (fewer if the model stops calling tools)."""
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": input.system_prompt},
            {"role": "user", "content": input.task},
        ]
        for cycle in range(1, input.cycles + 1):
            reply = await workflow.execute_activity(
                LLM_ACTIVITY,
                LLMRequest(model=input.model, messages=messages),
                result_type=dict,
                start_to_close_timeout=_LLM_TIMEOUT,
                retry_policy=_RETRY,
            )
            messages.append(reply)
            calls = reply.get("tool_calls") or []
            if not calls:
                return cycle
            for call in calls:
                result = await workflow.execute_activity(
                    TOOL_ACTIVITY,
                    ToolRequest(
                        workflow_id=workflow.info().workflow_id,
                        name=call["function"]["name"],
                        arguments=call["function"]["arguments"],
                    ),
                    result_type=str,
                    start_to_close_timeout=_TOOL_TIMEOUT,
                    retry_policy=_RETRY,
                )
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        return input.cycles


async def serve(address: str, task_queue: str, base_url: str, workdir: Path) -> None:
    """Run the bare worker until SIGTERM or SIGINT."""
    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0) as llm:
        activities = BareActivities(llm, workdir)
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[BareLoop],
            activities=[activities.llm_chat, activities.run_tool],
        ):
            await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])))
