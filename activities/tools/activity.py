"""The tool activities: list the worker's tools, and run one tool call."""

from __future__ import annotations

from temporalio import activity

from activities.errors import ToolError
from activities.models import (
    DescribeToolsRequest,
    DescribeToolsResult,
    ToolKind,
    ToolRequest,
    ToolResult,
    ToolStatus,
)
from activities.tools.registry import ToolContext, ToolRegistry, parse_arguments
from activities.tools.workspace import Workspace


class ToolActivities:
    """Tool execution with an injected registry and workspace (built once per worker)."""

    def __init__(self, registry: ToolRegistry, workspace: Workspace) -> None:
        self._registry = registry
        self._workspace = workspace

    @activity.defn(name="duragent.describe_tools")
    async def describe_tools(self, request: DescribeToolsRequest) -> DescribeToolsResult:
        """The tools a run may use, with their scheduling policies.

        The workflow asks once per run: the answer is recorded in history, so the worker's
        registry stays the single source of truth and replay stays deterministic.
        """
        names = self._registry.names if request.enabled is None else request.enabled
        tools = [t.spec() for n in names if (t := self._registry.get(n)) is not None]
        unknown = [n for n in names if self._registry.get(n) is None]
        return DescribeToolsResult(tools=tools, unknown=unknown)

    @activity.defn(name="duragent.run_tool")
    async def run_tool(self, request: ToolRequest) -> ToolResult:
        """Validate the arguments, then run the tool.

        A ``ToolError`` (including invalid arguments) becomes a result with status
        ``error`` for the model; any other exception is left to Temporal's retry policy.
        """
        call = request.call
        try:
            output = await self._run(request)
        except ToolError as err:
            activity.logger.info("tool %s failed: %s", call.name, err)
            return ToolResult(
                call_id=call.id,
                name=call.name,
                status=ToolStatus.ERROR,
                content=str(err),
                error_code=err.code,
            )
        return ToolResult(
            call_id=call.id, name=call.name, status=ToolStatus.SUCCESS, content=output
        )

    async def _run(self, request: ToolRequest) -> str:
        call = request.call
        tool = self._registry.get(call.name)
        if tool is None or tool.function is None or tool.kind is not ToolKind.ACTIVITY:
            raise ToolError(f"{call.name} is not a tool this worker runs", code="unknown_tool")
        args = parse_arguments(call.name, tool.args_model, call.arguments)
        context = ToolContext(
            workspace=self._workspace,
            call_id=call.id,
            idempotency_key=request.idempotency_key,
            heartbeat=activity.heartbeat,
        )
        return await tool.function(args, context)
