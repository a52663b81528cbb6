"""The tool activities: list the worker's tools, run one tool call, hold the shell.

Shell work is host-affine: a worker runs a second Temporal worker on a task queue of its
own (its *host queue*, see ``worker.main``). ``claim_host`` tells a run which that is,
the workflow sends the agent's shell calls there, and ``watch_background`` holds each
background command there for as long as it runs, so Temporal notices when the worker
that runs it dies (Temporal's pattern for worker-specific task queues).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from duragent.activities.errors import ToolError
from duragent.activities.heartbeat import heartbeating
from duragent.activities.models import (
    CleanupRequest,
    CleanupResult,
    DescribeToolsRequest,
    DescribeToolsResult,
    HostClaim,
    HostClaimRequest,
    SkillSummary,
    ToolKind,
    ToolRequest,
    ToolResult,
    ValidateArgumentsRequest,
    ValidateArgumentsResult,
    WatchRequest,
    WatchResult,
)
from duragent.activities.tools._mcp_names import MCP_SCHEME
from duragent.activities.tools.artifacts import offload
from duragent.activities.tools.background import BackgroundCommands
from duragent.activities.tools.mcp import Expansion
from duragent.activities.tools.registry import (
    Tool,
    ToolContext,
    ToolOutput,
    ToolRegistry,
    error_result,
)
from duragent.activities.tools.shell import sync_back
from duragent.activities.tools.skills import Skills
from duragent.activities.tools.workspace import Workspace

if TYPE_CHECKING:
    from duragent.activities.tools.mcp import McpServers
    from duragent.activities.tools.mirror import WorkspaceMirrors

BACKGROUND_LOST = "BackgroundLost"
"""Failure type of a watch whose command this worker does not know."""
MCP_UNAVAILABLE = "McpUnavailable"
"""Failure type of a tool listing whose MCP server cannot be reached: retried, and the
run fails saying so when it still cannot be."""
HOST_SHUTDOWN = "HostShutdown"
"""Failure type of a watch whose worker is shutting down (a deploy, a scale-in): the
command is stopped with it, and the run moves its shell to another worker."""


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
        mirrors: Local copies of object-store workspaces for shell commands; without
            it ``_bash`` refuses on such a workspace. The worker owns and closes it.
        host_queue: This worker's own task queue, where runs send their shell work
            (see the module); ``None`` when the worker runs none.
        worker: Who this worker is (host and process), for operators.
        mcp: The worker's MCP servers, whose tools agents enable with ``mcp:SERVER``;
            the registry's source of those tools. The worker owns and closes it.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        workspace: Workspace,
        *,
        background: BackgroundCommands | None = None,
        skills: Skills | None = None,
        mirrors: WorkspaceMirrors | None = None,
        host_queue: str | None = None,
        worker: str = "",
        mcp: McpServers | None = None,
    ) -> None:
        self._registry = registry
        self._mcp = mcp
        self._workspace = workspace
        self._background = background
        self._skills = skills
        self._mirrors = mirrors
        self._host_queue = host_queue
        self._worker = worker

    @activity.defn(name="duragent.describe_tools")
    async def describe_tools(self, request: DescribeToolsRequest) -> DescribeToolsResult:
        """The tools a run may use, with their scheduling policies.

        The workflow asks once per run: the answer is recorded in history, so the worker's
        registry stays the single source of truth and replay stays deterministic.
        """
        names = self._registry.names if request.enabled is None else request.enabled
        own = [n for n in names if not n.startswith(MCP_SCHEME)]
        tools = [t.spec() for n in own if (t := self._registry.get(n)) is not None]
        unknown = [n for n in own if self._registry.get(n) is None]
        mcp_tools = await self._expand([n for n in names if n.startswith(MCP_SCHEME)])
        offered = {t.name for t in tools}
        tools += [t.spec() for t in mcp_tools.tools if t.name not in offered]
        found = await self._skills.list_skills() if self._skills is not None else []
        skills = [SkillSummary(name=s.name, description=s.description) for s in found]
        return DescribeToolsResult(
            tools=tools,
            unknown=[*unknown, *mcp_tools.unknown],
            skills=skills,
            mcp_tools=mcp_tools.sources,
        )

    async def _expand(self, entries: list[str]) -> Expansion:
        """The tools of an agent's ``mcp:`` entries (see ``McpServers.expand``)."""
        if not entries:
            return Expansion(tools=[], unknown=[], sources={})
        if self._mcp is None:
            why = "this worker has no MCP servers; declare them in its duragent.toml"
            return Expansion(tools=[], unknown=[f"{e} ({why})" for e in entries], sources={})
        try:
            return await self._mcp.expand(entries)
        except ToolError as err:  # unreachable now: Temporal tries again, then the run fails
            raise ApplicationError(str(err), type=MCP_UNAVAILABLE) from None

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
                output = await self._run(request)
            if not isinstance(output, ToolOutput):
                output = ToolOutput(output)
        except ToolError as err:
            activity.logger.info("tool %s failed: %s", call.name, err)
            return error_result(call, err)
        result = ToolResult(
            call_id=call.id,
            name=call.name,
            status=output.status,
            content=output.content,
            background=output.background,
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
        try:
            tool = await self._find(request.tool)
            if tool is None:
                return ValidateArgumentsResult(error=f"unknown tool {request.tool!r}")
            tool.parse(request.arguments)
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

    @activity.defn(name="duragent.claim_host")
    async def claim_host(self, request: HostClaimRequest) -> HostClaim:
        """Name this worker's host queue: the run sends its shell work there from now on."""
        activity.logger.info("%s: shell work pinned to %s", request.workflow_id, self._worker)
        return HostClaim(task_queue=self._host_queue, worker=self._worker)

    @activity.defn(name="duragent.watch_background")
    async def watch_background(self, request: WatchRequest) -> WatchResult:
        """Hold a background command until it ends; it runs on the command's host queue.

        Heartbeats while the command runs, so a dead worker is a heartbeat timeout in the
        run. Cancelled by the run (it stops the command, or ended), it stops the command;
        cancelled because the run is gone (continued as new, terminated), it lets go and
        the command waits a while for the next run's watch.
        """
        background = self._background
        if background is None:
            raise ApplicationError("this worker runs no background commands", non_retryable=True)
        try:
            status = await background.watch(
                request.session_id, activity.heartbeat, until=activity.is_worker_shutdown
            )
        except ToolError as err:  # not known here: lost with a worker that was replaced
            raise ApplicationError(str(err), type=BACKGROUND_LOST, non_retryable=True) from None
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is not None and details.not_found:
                background.detach(request.session_id)
            else:
                await background.stop(request.session_id)
            raise
        if status.running:  # the worker is shutting down: a deploy must not wait for it
            await background.stop(request.session_id)
            raise ApplicationError(
                f"its worker ({self._worker}) shut down, and stopped the command",
                type=HOST_SHUTDOWN,
                non_retryable=True,
            )
        try:  # its last writes reach the store even if nobody checks it again
            async with heartbeating():
                await sync_back(self._context(request.workflow_id, request.workspace))
        except Exception as err:  # a check or the next command syncs again
            activity.logger.warning("could not sync back after %s: %s", request.session_id, err)
        return WatchResult(
            session_id=request.session_id,
            exit_code=status.exit_code,
            elapsed_seconds=status.elapsed_seconds,
        )

    def _scope(self, folder: str | None) -> Workspace:
        """The agent's view of the workspace: its folder, or the root for old runs."""
        return self._workspace if folder is None else self._workspace.scoped(folder)

    async def _run(self, request: ToolRequest) -> str | ToolOutput:
        call = request.call
        tool = await self._find(call.name)
        if tool is None or tool.function is None or tool.kind is not ToolKind.ACTIVITY:
            raise ToolError(f"{call.name} is not a tool this worker runs", code="unknown_tool")
        args = tool.parse(call.arguments)
        context = self._context(call.id, request.workspace, key=request.idempotency_key)
        return await tool.function(args, context)

    async def _find(self, name: str) -> Tool[Any] | None:
        """The tool of that name, listing the MCP servers again for one not seen yet.

        A run may have been described on another worker, or the server added the tool.
        """
        tool = self._registry.get(name)
        if tool is None and self._mcp is not None:
            tool = await self._mcp.find(name)
        return tool

    def _context(self, call_id: str, folder: str | None, *, key: str = "") -> ToolContext:
        return ToolContext(
            workspace=self._scope(folder),
            call_id=call_id,
            idempotency_key=key,
            heartbeat=activity.heartbeat,
            background=self._background,
            skills=self._skills,
            mirrors=self._mirrors,
        )
