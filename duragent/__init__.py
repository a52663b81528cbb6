"""duragent: durable LLM agents as Temporal workflows.

The public surface, for applications::

    import duragent

    @duragent.tool
    async def weather(city: str) -> str:
        '''Current temperature in a city, in Celsius.'''
        return "21.5"

    agent = duragent.Agent(name="reporter", tools=[weather], output_type=Report)

    client = await duragent.connect()
    async with duragent.Worker(client, agents=[agent]):
        report = await duragent.run(client, agent, "Weather in Lyon?")

The implementation lives in ``duragent.workflows`` (deterministic workflow code),
``duragent.activities`` (every side effect) and ``duragent.worker`` (processes, CLI).
Names are imported on first use, so ``import duragent`` stays cheap, and Temporal's
workflow sandbox, which imports this package before the workflow modules, never loads
the client and worker code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from duragent._version import __version__

if TYPE_CHECKING:
    from duragent.activities.errors import ToolError
    from duragent.activities.models import ApprovalMode, ModelOptions
    from duragent.activities.tasks import task
    from duragent.activities.tools.registry import Tool, ToolContext, ToolOutput, tool
    from duragent.worker.agents import Agent, AgentNotFound, AgentSpec, agent_catalog
    from duragent.worker.client import TemporalUnavailable
    from duragent.worker.handle import AgentFailed, AgentHandle, get_agent
    from duragent.worker.library import Worker, connect, run, start
    from duragent.workflows.graph_load import Graph
    from duragent.workflows.models import (
        AgentInput,
        AgentResult,
        AgentStatus,
        ApprovalPolicy,
        AskPolicy,
        HistoryPolicy,
        LLMPolicy,
        MemoryPolicy,
    )

# Public name -> the module that defines it.
_EXPORTS = {
    "Agent": "duragent.worker.agents",
    "AgentNotFound": "duragent.worker.agents",
    "AgentSpec": "duragent.worker.agents",
    "agent_catalog": "duragent.worker.agents",
    "AgentFailed": "duragent.worker.handle",
    "AgentHandle": "duragent.worker.handle",
    "get_agent": "duragent.worker.handle",
    "Worker": "duragent.worker.library",
    "connect": "duragent.worker.library",
    "run": "duragent.worker.library",
    "start": "duragent.worker.library",
    "TemporalUnavailable": "duragent.worker.client",
    "Tool": "duragent.activities.tools.registry",
    "ToolContext": "duragent.activities.tools.registry",
    "ToolOutput": "duragent.activities.tools.registry",
    "tool": "duragent.activities.tools.registry",
    "ToolError": "duragent.activities.errors",
    "task": "duragent.activities.tasks",
    "ApprovalMode": "duragent.activities.models",
    "ModelOptions": "duragent.activities.models",
    "Graph": "duragent.workflows.graph_load",
    "AgentInput": "duragent.workflows.models",
    "AgentResult": "duragent.workflows.models",
    "AgentStatus": "duragent.workflows.models",
    "ApprovalPolicy": "duragent.workflows.models",
    "AskPolicy": "duragent.workflows.models",
    "HistoryPolicy": "duragent.workflows.models",
    "LLMPolicy": "duragent.workflows.models",
    "MemoryPolicy": "duragent.workflows.models",
}

__all__ = [
    "Agent",
    "AgentFailed",
    "AgentHandle",
    "AgentInput",
    "AgentNotFound",
    "AgentResult",
    "AgentSpec",
    "AgentStatus",
    "ApprovalMode",
    "ApprovalPolicy",
    "AskPolicy",
    "Graph",
    "HistoryPolicy",
    "LLMPolicy",
    "MemoryPolicy",
    "ModelOptions",
    "TemporalUnavailable",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolOutput",
    "Worker",
    "__version__",
    "agent_catalog",
    "connect",
    "get_agent",
    "run",
    "start",
    "task",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'duragent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return __all__
