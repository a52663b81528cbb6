"""The tool activities: list the worker's tools, and run one tool call."""

from __future__ import annotations

from temporalio import activity

from activities.errors import ToolError
from activities.heartbeat import heartbeating
from activities.models import (
    CleanupRequest,
    CleanupResult,
    DescribeToolsRequest,
    DescribeToolsResult,
    SkillSummary,
    ToolKind,
    ToolRequest,
    ToolResult,
    ValidateArgumentsRequest,
    ValidateArgumentsResult,
)
from activities.tools.artifacts import offload
from activities.tools.background import BackgroundCommands
from activities.tools.registry import (
    ToolContext,
    ToolOutput,
    ToolRegistry,
    error_result,
    parse_arguments,
)
from activities.tools.skills import Skills
from activities.tools.workspace import Workspace


class ToolActivities:
    """Tool execution with an injected registry and workspace (built once per worker).

    Args:
        registry: The tools this worker runs.
        workspace: Where the tools read and write.
        background: The worker's background commands; without it ``_bash`` refuses
            ``background=true``. The worker owns it and closes it at shutdown.
        skills: The skills ``_activate_skill`` reads; the agent's own ``skills`` folder
            when ``None``. The worker passes the root's, a library every agent shares,
            whatever folder the agent works in.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        workspace: Workspace,
        *,
        background: BackgroundCommands | None = None,
        skills: Skills | None = None,
    ) -> None:
        self._registry = registry
        self._workspace = workspace
        self._background = background
        self._skills = skills

    @activity.defn(name="duragent.describe_tools")
    async def describe_tools(self, request: DescribeToolsRequest) -> DescribeToolsResult:
        """The tools a run may use, with their scheduling policies.

        The workflow asks once per run: the answer is recorded in history, so the worker's
        registry stays the single source of truth and replay stays deterministic.
        """
        names = self._registry.names if request.enabled is None else request.enabled
        tools = [t.spec() for n in names if (t := self._registry.get(n)) is not None]
        unknown = [n for n in names if self._registry.get(n) is None]
        found = await self._skills.list_skills() if self._skills is not None else []
        skills = [SkillSummary(name=s.name, description=s.description) for s in found]
        return DescribeToolsResult(tools=tools, unknown=unknown, skills=skills)

    @activity.defn(name="duragent.run_tool")
    async def run_tool(self, request: ToolRequest) -> ToolResult:
        """Validate the arguments, then run the tool.

        A ``ToolError`` (including invalid arguments) becomes a result with status
        ``error`` for the model; any other exception is left to Temporal's retry policy.
        """
        call = request.call
        try:
            workspace = self._scope(request.workspace)
            # Heartbeats carry cancellation to the tool: a cancelled run stops its tools.
            async with heartbeating():
                output = await self._run(request, workspace)
            if not isinstance(output, ToolOutput):
                output = ToolOutput(output)
        except ToolError as err:
            activity.logger.info("tool %s failed: %s", call.name, err)
            return error_result(call, err)
        result = ToolResult(
            call_id=call.id, name=call.name, status=output.status, content=output.content
        )
        if len(output.content) > request.large_result_chars:
            path, stub = await offload(workspace, output.content)
            result = result.model_copy(
                update={"content": stub, "artifact": path, "artifact_chars": len(output.content)}
            )
        return result

    @activity.defn(name="duragent.validate_tool_arguments")
    async def validate_arguments(
        self, request: ValidateArgumentsRequest
    ) -> ValidateArgumentsResult:
        """Check arguments against a tool's model without running it (for edits)."""
        tool = self._registry.get(request.tool)
        if tool is None:
            return ValidateArgumentsResult(error=f"unknown tool {request.tool!r}")
        try:
            parse_arguments(request.tool, tool.args_model, request.arguments)
        except ToolError as err:
            return ValidateArgumentsResult(error=str(err))
        return ValidateArgumentsResult()

    @activity.defn(name="duragent.cleanup")
    async def cleanup(self, request: CleanupRequest) -> CleanupResult:
        """Release what a cancelled run held on this worker."""
        activity.logger.info("cleaning up after %s (%s)", request.workflow_id, request.reason)
        if self._background is None:
            return CleanupResult()
        stopped = await self._background.stop_run(request.workflow_id)
        return CleanupResult(released=[f"background command {s}" for s in stopped])

    def _scope(self, folder: str | None) -> Workspace:
        """The agent's view of the workspace: its folder, or the root for old runs."""
        return self._workspace if folder is None else self._workspace.scoped(folder)

    async def _run(self, request: ToolRequest, workspace: Workspace) -> str | ToolOutput:
        call = request.call
        tool = self._registry.get(call.name)
        if tool is None or tool.function is None or tool.kind is not ToolKind.ACTIVITY:
            raise ToolError(f"{call.name} is not a tool this worker runs", code="unknown_tool")
        args = parse_arguments(call.name, tool.args_model, call.arguments)
        context = ToolContext(
            workspace=workspace,
            call_id=call.id,
            idempotency_key=request.idempotency_key,
            heartbeat=activity.heartbeat,
            background=self._background,
            skills=self._skills,
        )
        return await tool.function(args, context)
