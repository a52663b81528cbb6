"""Where an agent's shell work runs: one worker, reached through its own task queue.

A shell command needs a real folder, and a background command lives in one worker
process. So the calls of ``host_affine`` tools (``_bash``, ``_check_background_command``,
``_stop_background_command``) do not go to the shared task queue, where any worker may
take them: on its first such call the run asks a worker for its *host queue* (the
``duragent.claim_host`` activity; the worker that answers is usually the one running the
workflow) and records it, and every later shell call goes there. This is Temporal's
pattern for host-affine activities (worker-specific task queues). Every other activity
of the agent still runs on any worker.

Each background command is then held by a ``duragent.watch_background`` activity on its
host: it heartbeats while the command runs and returns when it ends. So when that worker
dies, Temporal says so (a heartbeat timeout, seconds later), the run marks the command
``lost`` and the next check tells the model at once, and the command is gone too: it
died with its worker. A host queue that nobody polls any more (its worker was replaced)
shows up as a call not picked up in :data:`HOST_PICKUP`; the run then pins itself to
another worker and, for a call that never started, tries it there.

The pin and the background commands are carried across continue-as-new; the next run
watches the commands again (their worker keeps them for a grace period). When the run
ends, however it ends, its background commands are stopped.

Runs started before this module keep sending shell calls to the shared queue
(:data:`PATCH_ID`).
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    CancelledError,
    TimeoutError,
    TimeoutType,
)
from temporalio.workflow import ActivityCancellationType, ActivityHandle

with workflow.unsafe.imports_passed_through():
    from duragent.activities.models import (
        HostClaimRequest,
        ToolRequest,
        ToolResult,
        ToolSpec,
        WatchRequest,
        WatchResult,
    )
    from duragent.activities.tools.activity import HOST_SHUTDOWN, ToolActivities
    from duragent.workflows import activity_calls as calls
    from duragent.workflows import policy
    from duragent.workflows.models import (
        ActivityPolicy,
        BackgroundSession,
        BackgroundState,
        ShellCarry,
    )

# Runs started before shell work was pinned replay without the claim and the watches.
PATCH_ID = "host-affine-shell"
# A live host takes a call at once: its worker keeps slots for shell work alone. A call
# that waits this long on a host queue is waiting on a worker that is gone.
HOST_PICKUP = timedelta(seconds=10)
# Asking a worker for its host queue is a lookup: fast, and safe to retry anywhere.
CLAIM_POLICY = ActivityPolicy(start_to_close_seconds=30, heartbeat_seconds=None)
# A watch heartbeats every second; three missed seconds and more mean its worker died.
WATCH_HEARTBEAT = timedelta(seconds=10)
# A background command may run this long within one run (a run continued as new
# watches it again, from zero).
WATCH_LIFETIME = timedelta(days=30)
# Sessions a run remembers (status shows them, checks are routed by them); the oldest
# finished ones are forgotten first.
MAX_SESSIONS = 50


class ShellHost:
    """Routes an agent's host-affine tool calls and follows its background commands.

    Args:
        carry: What the previous run handed over, if it continued as new.
    """

    def __init__(self, carry: ShellCarry | None) -> None:
        carry = carry or ShellCarry()
        self._host = carry.host
        self._worker = carry.worker
        self._claimed = carry.host is not None
        self._sessions = {s.session_id: s for s in carry.background}
        self._handles: dict[str, ActivityHandle[WatchResult]] = {}
        self._follows: dict[str, asyncio.Task[None]] = {}
        self._claiming = asyncio.Lock()

    def applies(self, spec: ToolSpec) -> bool:
        """Whether a call of this tool goes to the agent's host."""
        return spec.host_affine and workflow.patched(PATCH_ID)

    def resume(self, workspace: str | None) -> None:
        """Watch again the commands the previous run left running (after continue-as-new)."""
        for session in self._sessions.values():
            if session.state is BackgroundState.RUNNING:
                self._watch(session, workspace)

    def carry(self) -> ShellCarry | None:
        """What the next run needs, or ``None`` when the shell was never used."""
        if not self._claimed and not self._sessions:
            return None
        return ShellCarry(
            host=self._host, worker=self._worker, background=list(self._sessions.values())
        )

    async def run(self, request: ToolRequest, spec: ToolSpec) -> ToolResult:
        """Run one host-affine call where it belongs, and follow what it starts."""
        call = request.call
        session = self._sessions.get(_session_id(call.arguments) or "")
        if session is not None and session.state is BackgroundState.LOST:
            return _lost(request, session)
        queue = session.host if session is not None else await self._pin()
        try:
            result = await self._on_host(queue, request, spec, session)
        except ActivityError as err:
            if _timeout(err) is not TimeoutType.SCHEDULE_TO_START:
                return _failed(request, err, self._gone(queue, err))
            self._forget(queue)
            if session is not None:
                why = f"its worker ({queue}) no longer takes work"
                if session.state is BackgroundState.RUNNING:
                    self._lose(session, why)
                return _lost(request, session, why)
            # Nobody took the call: it never started, so another host may run it.
            queue = await self._pin()
            try:
                result = await self._on_host(queue, request, spec, None)
            except ActivityError as again:
                return _failed(request, again, self._gone(queue, again))
        if result.background is not None and queue is not None:
            self._start_following(result.background, queue, call.arguments, request.workspace)
        return result

    async def release(self) -> None:
        """Stop the run's background commands (the run ends) and wait until they have."""
        running = [s for s in self._sessions.values() if s.state is BackgroundState.RUNNING]
        for session in running:
            handle = self._handles.get(session.session_id)
            if handle is not None and not handle.done():
                handle.cancel()
        follows = [self._follows[s.session_id] for s in running if s.session_id in self._follows]
        if follows:
            await asyncio.gather(*follows)

    # --- private -------------------------------------------------------------------

    async def _pin(self) -> str | None:
        """The host queue, claimed on first use; ``None`` when workers run none."""
        async with self._claiming:
            if not self._claimed:
                claim = await workflow.execute_activity_method(
                    ToolActivities.claim_host,
                    HostClaimRequest(workflow_id=workflow.info().workflow_id),
                    **calls.options(CLAIM_POLICY),
                )
                self._host, self._worker, self._claimed = claim.task_queue, claim.worker, True
        return self._host

    async def _on_host(
        self,
        queue: str | None,
        request: ToolRequest,
        spec: ToolSpec,
        session: BackgroundSession | None,
    ) -> ToolResult:
        """The call on the host queue; for a command's check, raced with its watch."""
        handle = workflow.start_activity_method(
            ToolActivities.run_tool,
            request,
            task_queue=queue,
            schedule_to_start_timeout=HOST_PICKUP if queue is not None else None,
            summary=request.call.name,
            **calls.options(policy.tool_policy(spec)),
        )
        follow = self._follows.get(session.session_id) if session is not None else None
        if follow is not None and not follow.done():
            # A dead host answers nothing: its command's watch times out first.
            await workflow.wait([handle, follow], return_when=asyncio.FIRST_COMPLETED)
            assert session is not None
            if not handle.done() and session.state is BackgroundState.LOST:
                handle.cancel()
                # Waited for, not awaited: its outcome (a cancel, or a result that
                # crossed the cancel) no longer matters, and must not end the run.
                await workflow.wait([handle])
                if not handle.cancelled():
                    handle.exception()
                return _lost(request, session)
        return await handle

    def _start_following(
        self, session_id: str, host: str, arguments: str, workspace: str | None
    ) -> None:
        command = _argument(arguments, "command") or ""
        session = BackgroundSession(session_id=session_id, host=host, command=command[:200])
        self._sessions[session_id] = session
        self._forget_old_sessions()
        self._watch(session, workspace)

    def _watch(self, session: BackgroundSession, workspace: str | None) -> None:
        handle = workflow.start_activity_method(
            ToolActivities.watch_background,
            WatchRequest(
                session_id=session.session_id,
                workflow_id=workflow.info().workflow_id,
                workspace=workspace,
            ),
            task_queue=session.host,
            summary=f"background {session.session_id}",
            start_to_close_timeout=WATCH_LIFETIME,
            schedule_to_start_timeout=HOST_PICKUP,
            heartbeat_timeout=WATCH_HEARTBEAT,
            # Another attempt could only land on the same dead queue.
            retry_policy=RetryPolicy(maximum_attempts=1),
            # A cancelled watch stops its command; the run waits until it has.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        self._handles[session.session_id] = handle
        self._follows[session.session_id] = asyncio.create_task(self._follow(session, handle))

    async def _follow(
        self, session: BackgroundSession, handle: ActivityHandle[WatchResult]
    ) -> None:
        try:
            ended = await handle
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                session.state = BackgroundState.STOPPED
                return
            if calls.error_type(err) == HOST_SHUTDOWN:
                self._forget(session.host)
            self._lose(session, self._gone(session.host, err) or calls.cause(err))
            return
        if session.state is BackgroundState.RUNNING:
            session.state, session.exit_code = BackgroundState.ENDED, ended.exit_code

    def _gone(self, queue: str | None, err: ActivityError) -> str | None:
        """Why a host is gone, if this failure says it is (and forget it then)."""
        kind = _timeout(err)
        if kind not in (TimeoutType.HEARTBEAT, TimeoutType.SCHEDULE_TO_START):
            return None
        self._forget(queue)
        if kind is TimeoutType.HEARTBEAT:
            return f"its worker ({queue}) stopped responding"
        return f"its worker ({queue}) no longer takes work"

    def _lose(self, session: BackgroundSession, why: str) -> None:
        session.state, session.error = BackgroundState.LOST, why

    def _forget(self, queue: str | None) -> None:
        """The pinned worker is gone: the next shell call claims another."""
        if queue is not None and queue == self._host:
            self._host, self._worker, self._claimed = None, "", False

    def _forget_old_sessions(self) -> None:
        finished = [s for s, v in self._sessions.items() if v.state is not BackgroundState.RUNNING]
        for session_id in finished[: max(0, len(self._sessions) - MAX_SESSIONS)]:
            del self._sessions[session_id]
            self._handles.pop(session_id, None)
            self._follows.pop(session_id, None)


def _timeout(err: ActivityError) -> TimeoutType | None:
    return err.cause.type if isinstance(err.cause, TimeoutError) else None


def _argument(arguments: str, name: str) -> str | None:
    """One string argument of a call, if the arguments parse and have it."""
    try:
        value = json.loads(arguments).get(name)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _session_id(arguments: str) -> str | None:
    return _argument(arguments, "session_id")


def _lost(request: ToolRequest, session: BackgroundSession, why: str | None = None) -> ToolResult:
    if session.state is BackgroundState.LOST:
        text = (
            f"background command {session.session_id} was lost: "
            f"{session.error or 'its worker is gone'}, and the command died with it. "
            "Start it again if you still need it."
        )
    else:  # it had ended; what it printed was on its worker
        text = (
            f"background command {session.session_id} had {session.state.value} "
            f"(exit code {session.exit_code}), but its output is gone with its worker: {why}"
        )
    return policy.error_result_of(request.call, text, "lost")


def _failed(request: ToolRequest, err: ActivityError, gone: str | None) -> ToolResult:
    why = f"{gone}; the call did not finish" if gone else calls.cause(err)
    return policy.failed_result(request.call, why)
