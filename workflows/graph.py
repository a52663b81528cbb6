"""``GraphWorkflow``: a declared graph of agents, tasks, gates and sub-graphs, run durably.

The spec (:class:`workflows.graph_spec.GraphSpec`) travels in the run's input and its
fingerprint is the run's version. The run goes in **steps** (as Pregel and LangGraph
do): every node of the frontier runs at once, each writing its result into the state
through its ``writes`` as it finishes (history order; a map's results in item order);
when all have finished, each node's edges are followed against the new state, and the
nodes they reach (once each) are the next frontier. ``END`` ends a branch; the graph
completes when no node is left to run.

Each node kind is a Temporal primitive: an ``agent`` is a child ``AgentWorkflow``, a
``task`` an activity running a registered function, a ``gate`` a wait for the
``decide`` update (validated against the gate's schema before it reaches history), a
``map`` its node per item with bounded concurrency, a ``graph`` a child
``GraphWorkflow``. History is the checkpoint: a completed node never runs again, a
worker killed anywhere resumes the run, and a long run continues as new between steps.

Pure decisions live in :mod:`workflows.graph_policy`, :mod:`workflows.graph_state` and
:mod:`workflows.graph_expr`; this class only sequences them and holds the state the
queries read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from duragent.activities.models import (
        ListTasksRequest,
        ListTasksResult,
        TaskRequest,
        TaskResult,
    )
    from duragent.activities.tasks import LIST_TASKS, RUN_TASK
    from duragent.workflows import graph_policy as gp
    from duragent.workflows import policy, telemetry
    from duragent.workflows import search_attributes as search
    from duragent.workflows.events import GraphEvents
    from duragent.workflows.graph_expr import ExpressionError
    from duragent.workflows.graph_models import (
        GRAPH_WORKFLOW_NAME,
        GateDecision,
        GateView,
        GraphCarry,
        GraphInput,
        GraphPending,
        GraphResult,
        GraphStatus,
        GraphView,
        NodeStatus,
        NodeView,
    )
    from duragent.workflows.graph_spec import (
        END,
        START,
        AgentNodeSpec,
        GraphSpec,
        MapErrorMode,
        Node,
        NodeKind,
        NodePolicy,
        TaskNodeSpec,
        effective_policy,
    )
    from duragent.workflows.graph_state import StateError, apply_writes, initial_state, scope
    from duragent.workflows.graph_validate import validate
    from duragent.workflows.models import AgentResult, AgentStatus

# Listing a worker's tasks is a lookup in its memory.
LIST_TASKS_TIMEOUT = timedelta(seconds=10)
# By name: the agent's module stays out of this one's sandbox.
AGENT_WORKFLOW = "AgentWorkflow"
# A task's default attempt: the graph's timeout policy, else this.
DEFAULT_TASK_TIMEOUT = timedelta(minutes=5)


@workflow.defn(name=GRAPH_WORKFLOW_NAME)
class GraphWorkflow:
    """A durable graph run: steps of nodes over a typed state, queryable at any time."""

    @workflow.init
    def __init__(self, input: GraphInput) -> None:
        self._input = input
        self._spec: GraphSpec = input.spec
        self._fingerprint = input.spec.fingerprint()
        carry = input.carry
        self._state: dict[str, Any] = dict(carry.state) if carry else {}
        self._frontier: list[str] | None = list(carry.frontier) if carry else None
        self._nodes: dict[str, NodeView] = (
            dict(carry.nodes)
            if carry
            else {n: NodeView(name=n, kind=node.kind.value) for n, node in input.spec.nodes.items()}
        )
        self._step = carry.step if carry else 0
        self._runs = carry.runs if carry else 1
        self._status = GraphStatus.RUNNING
        self._error: str | None = None
        self._gates: dict[str, GateView] = {}
        self._answers: dict[str, Any] = {}
        self._agents: set[str] = set()
        self._graphs: set[str] = set()
        self._dropped = 0
        self._searchable = workflow.info().typed_search_attributes.get(search.STATUS) is not None
        self._events = GraphEvents(carry.events if carry else None)

    @workflow.run
    async def run(self, input: GraphInput) -> GraphResult:
        """Run steps until no node is left; fail with the node and the reason if one fails."""
        if self._frontier is None:
            await self._start()
        assert self._frontier is not None
        while self._frontier:
            if self._step >= input.max_steps:
                self._fail(f"the graph ran {input.max_steps} steps (max_steps) without ending")
            if self._history_full():
                await self._continue_as_new()
            self._step += 1
            self._frontier = await self._run_step(self._frontier)
        self._set_status(GraphStatus.COMPLETED)
        result = self._result()
        self._events.finished(result.status.value, result=result.output)
        return result

    # --- queries and the gate update -----------------------------------------------

    @workflow.query(name="status")
    def status(self) -> GraphView:
        """Per node: status, visits, children; the open gates; the run's status."""
        return GraphView(
            name=self._spec.name,
            fingerprint=self._fingerprint,
            status=self._status,
            step=self._step,
            nodes=list(self._nodes.values()),
            gates=list(self._gates.values()),
            error=self._error,
            runs=self._runs,
            dropped_inputs=self._dropped,
        )

    @workflow.query(name="state")
    def state(self) -> dict[str, Any]:
        """The graph's state as it stands."""
        return dict(self._state)

    @workflow.query(name="pending")
    def pending(self) -> GraphPending:
        """Open gates, and the running children whose own questions may be waiting."""
        return GraphPending(
            gates=list(self._gates.values()),
            agents=sorted(self._agents),
            graphs=sorted(self._graphs),
        )

    @workflow.update(name="decide")
    def decide(self, decision: GateDecision) -> str:
        """Answer an open gate; returns its id."""
        self._answers[decision.gate_id] = decision.answer
        return decision.gate_id

    @decide.validator
    def _validate_decision(self, decision: GateDecision) -> None:
        # Rejected here, a stale or malformed answer never reaches history.
        problem = self._decision_problem(decision)
        if problem is not None:
            raise ApplicationError(problem, type="InvalidDecision")

    @workflow.signal(name="decide_signal")
    def decide_signal(self, decision: GateDecision) -> None:
        """Fire-and-forget form of ``decide`` (sent even while no worker runs).

        A signal cannot be refused: an invalid one is logged, counted and dropped.
        """
        problem = self._decision_problem(decision)
        if problem is not None:
            self.on_dropped_signal("decide_signal", problem)
            return
        self._answers[decision.gate_id] = decision.answer

    def on_dropped_signal(self, handler: str, reason: str) -> None:
        """A signal that cannot be applied (also told by :mod:`workflows.handler_guard`)."""
        self._dropped += 1
        workflow.logger.warning("%s signal dropped: %s", handler, reason)

    def _decision_problem(self, decision: GateDecision) -> str | None:
        gate = self._gates.get(decision.gate_id)
        if gate is None or decision.gate_id in self._answers:
            open_ = ", ".join(g for g in self._gates if g not in self._answers) or "none"
            return f"no open gate {decision.gate_id!r} (open: {open_})"
        return gp.answer_problem(gate.answer_schema, decision.answer)

    # --- steps ------------------------------------------------------------------------

    async def _start(self) -> None:
        known = await self._known_tasks()
        problems = [f"{p.where}: {p.message}" for p in validate(self._spec, known_tasks=known)]
        problems += gp.schema_problems(self._spec)
        if problems:
            listed = "; ".join(problems)
            self._fail(f"invalid graph {self._spec.name!r}: {listed}", "InvalidGraph")
        try:
            self._state = initial_state(self._spec, self._input.input)
        except StateError as err:
            self._fail(f"bad input: {err}", "InvalidGraph")
        self._frontier = self._follow(START)

    async def _known_tasks(self) -> set[str] | None:
        """The tasks this worker runs, when the graph's task nodes run on its queue.

        A local activity: no round trip to the server. Task nodes sent to another task
        queue (their ``task_queue``) are that queue's workers' business, so a graph that
        has any is not checked here; neither is one with no task nodes.
        """
        layers = [
            (node,) if node.map is None else (node, node.map.node)
            for node in self._spec.nodes.values()
        ]
        queues = {
            effective_policy(self._spec.defaults, *nodes).task_queue
            for nodes in layers
            if nodes[-1].task is not None
        }
        if queues != {None}:  # no task node, or some run elsewhere
            return None
        listed = await workflow.execute_local_activity(
            LIST_TASKS,
            ListTasksRequest(graph=self._spec.name),
            result_type=ListTasksResult,
            start_to_close_timeout=LIST_TASKS_TIMEOUT,
        )
        return set(listed.refs)

    async def _run_step(self, frontier: list[str]) -> list[str]:
        """Run a frontier's nodes at once; after all have finished, follow their edges."""
        outcomes = await asyncio.gather(*(self._visit(name) for name in frontier))
        targets: list[str] = []
        for name, outcome in zip(frontier, outcomes, strict=True):
            targets.extend(self._follow(name) if outcome is None else outcome)
        return [t for t in dict.fromkeys(targets) if t != END]

    async def _visit(self, name: str) -> list[str] | None:
        """Run one node; ``None`` when its edges decide what comes next, else the targets."""
        node = self._spec.nodes[name]
        view = self._nodes[name]
        if node.max_visits is not None and view.visits >= node.max_visits:
            view.status = NodeStatus.SKIPPED
            self._events.node(view)
            telemetry.node_finished(self._spec.name, name, node.kind.value, view.status, 0.0)
            if node.on_exhausted is None:
                self._fail(f"node {name!r} ran {node.max_visits} times (max_visits) and has no "
                           "on_exhausted edge")  # fmt: skip
            return [node.on_exhausted]
        view.visits += 1
        view.status, view.error, view.children = NodeStatus.RUNNING, None, []
        self._events.node(view)
        began = workflow.now()
        with telemetry.node_span(self._spec.name, name, node.kind.value, view.visits):
            try:
                result = await self._run_node(name, node, view.visits)
                self._state = apply_writes(
                    self._spec, self._state, node, result, visits=self._visits()
                )
            except (gp.NodeFailed, StateError, ExpressionError) as err:
                view.status, view.error = NodeStatus.FAILED, str(err)
            else:
                view.status = NodeStatus.DONE
        seconds = (workflow.now() - began).total_seconds()
        self._events.node(view)
        telemetry.node_finished(self._spec.name, name, node.kind.value, view.status, seconds)
        if view.status is NodeStatus.DONE:
            return None
        if node.on_error is None:
            self._fail(f"node {name!r} failed: {view.error}", "NodeFailed")
        workflow.logger.warning("node %s failed, taking on_error: %s", name, view.error)
        return [node.on_error]

    def _follow(self, name: str) -> list[str]:
        try:
            return gp.next_nodes(self._spec, name, self._names())
        except gp.NodeFailed as err:
            self._fail(str(err), "NodeFailed")

    async def _run_node(self, name: str, node: Node, visit: int) -> Any:
        policy = effective_policy(self._spec.defaults, node)
        key = f"{name}@{visit}"
        if node.kind is NodeKind.AGENT:
            assert node.agent is not None
            return await self._agent(name, key, policy, node.agent, self._names())
        if node.kind is NodeKind.TASK:
            assert node.task is not None
            return await self._task(name, key, policy, node.task, self._names())
        if node.kind is NodeKind.GATE:
            return await self._gate(name, key, node)
        if node.kind is NodeKind.MAP:
            return await self._map(name, key, node)
        return await self._subgraph(name, key, node)

    # --- node kinds -----------------------------------------------------------------

    async def _agent(
        self, name: str, key: str, policy: NodePolicy, agent: AgentNodeSpec, names: dict[str, Any]
    ) -> Any:
        graph_id = workflow.info().workflow_id
        input = gp.agent_input(
            name,
            policy,
            agent,
            names,
            model=self._input.model,
            owner=self._input.owner,
            workspace=policy_workspace(graph_id),
        )
        child_id = f"{graph_id}/{key}"
        self._nodes[name].children.append(child_id)
        self._events.node(self._nodes[name])
        self._agents.add(child_id)
        try:
            result = await workflow.execute_child_workflow(
                AGENT_WORKFLOW,
                input,
                result_type=AgentResult,
                id=child_id,
                task_queue=policy.task_queue,
                static_summary=f"{self._spec.name}.{key}: {input.task[:120]}",
                search_attributes=self._child_attributes(input.model),
            )
        except ChildWorkflowError as err:
            raise gp.NodeFailed(f"agent {child_id}: {err.cause or err}") from None
        finally:
            self._agents.discard(child_id)
        if result.status is not AgentStatus.COMPLETED:
            raise gp.NodeFailed(
                f"agent {child_id} ended {result.status.value}: {result.error or 'no answer'}"
            )
        return result.output if agent.output is not None else result.answer

    async def _task(
        self, name: str, key: str, policy: NodePolicy, task: TaskNodeSpec, names: dict[str, Any]
    ) -> Any:
        args = gp.render_json(dict(task.args), names, f"nodes.{name}.task.args")
        assert isinstance(args, dict)
        request = TaskRequest(
            ref=task.ref, args=args, idempotency_key=f"{workflow.info().workflow_id}:{key}"
        )
        timeout = policy.timeout_seconds
        try:
            done = await workflow.execute_activity(
                RUN_TASK,
                request,
                result_type=TaskResult,
                task_queue=policy.task_queue,
                start_to_close_timeout=timedelta(seconds=timeout)
                if timeout
                else DEFAULT_TASK_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=policy.max_attempts or 3),
                summary=f"{key}: {task.ref}",
            )
        except ActivityError as err:
            raise gp.NodeFailed(f"task {task.ref}: {err.cause or err}") from None
        return done.value

    async def _gate(self, name: str, key: str, node: Node) -> Any:
        gate = node.gate
        assert gate is not None
        names = self._names()
        seconds = gate.deadline_seconds
        now = workflow.now()
        self._gates[key] = GateView(
            id=key,
            node=name,
            prompt=gp.render_text(gate.prompt, names, f"nodes.{name}.gate.prompt"),
            show=None
            if gate.show is None
            else gp.render_json(gate.show, names, f"nodes.{name}.gate.show"),
            answer_schema=gate.answer,
            deadline=now + timedelta(seconds=seconds) if seconds else None,
            opened_at=now,
        )
        self._nodes[name].status = NodeStatus.WAITING
        self._set_status(GraphStatus.WAITING_USER)
        self._events.node(self._nodes[name])
        self._events.gate(self._gates[key])
        timed_out = False
        try:
            await workflow.wait_condition(
                lambda: key in self._answers,
                timeout=timedelta(seconds=seconds) if seconds else None,
            )
        except TimeoutError:
            timed_out = True
        # Not in a ``finally``: an evicted run unwinds through here outside the event
        # loop, where no workflow call may be made.
        closed = self._gates.pop(key)
        answer = gate.on_timeout if timed_out else self._answers.get(key)
        self._events.gate(closed, answer=answer, resolved=True)
        if not self._gates:
            self._set_status(GraphStatus.RUNNING)
        if not timed_out:
            return self._answers.pop(key)
        if gate.on_timeout is None:
            raise gp.NodeFailed(f"nobody answered gate {key} within {gate.deadline}")
        return gate.on_timeout

    async def _map(self, name: str, key: str, node: Node) -> list[Any]:
        spec = node.map
        assert spec is not None
        names = self._names()
        items = gp.map_items(spec.over, names, name)
        inner = spec.node
        policy = effective_policy(self._spec.defaults, node, inner)
        slots = asyncio.Semaphore(spec.concurrency)

        async def one(index: int, item: Any) -> Any:
            async with slots:
                scoped = names | {"item": item}
                item_key = f"{key}[{index}]"
                if inner.agent is not None:
                    return await self._agent(name, item_key, policy, inner.agent, scoped)
                assert inner.task is not None
                return await self._task(name, item_key, policy, inner.task, scoped)

        calls = [one(i, item) for i, item in enumerate(items)]
        if spec.on_error is MapErrorMode.COLLECT:
            return await _collect(calls)
        return await _fail_fast(calls)

    async def _subgraph(self, name: str, key: str, node: Node) -> Any:
        sub = node.graph
        assert sub is not None and sub.spec is not None  # a file is inlined before start
        names = self._names()
        start = gp.render_json(dict(sub.input), names, f"nodes.{name}.graph.input")
        assert isinstance(start, dict)
        child_id = f"{workflow.info().workflow_id}/{key}"
        self._nodes[name].children.append(child_id)
        self._events.node(self._nodes[name])
        self._graphs.add(child_id)
        child_input = GraphInput(
            spec=sub.spec, input=start, owner=self._input.owner, model=self._input.model
        )
        try:
            result: GraphResult = await workflow.execute_child_workflow(
                GraphWorkflow.run,
                child_input,
                id=child_id,
                static_summary=f"{key}: {sub.spec.name}",
            )
        except ChildWorkflowError as err:
            raise gp.NodeFailed(f"graph {child_id}: {err.cause or err}") from None
        finally:
            self._graphs.discard(child_id)
        if not sub.output:
            return result.output
        final = scope(result.state)
        return {
            k: gp.render_json(v, final, f"nodes.{name}.graph.output.{k}")
            for k, v in sub.output.items()
        }

    # --- state, endings and continue-as-new -------------------------------------------

    def _names(self) -> dict[str, Any]:
        return scope(self._state, visits=self._visits())

    def _visits(self) -> dict[str, int]:
        return {n: v.visits for n, v in self._nodes.items()}

    def _history_full(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._input.history_max_events
        )

    async def _continue_as_new(self) -> NoReturn:
        self._events.detach()  # a stream reader's poll would hold the wait below
        await workflow.wait_condition(workflow.all_handlers_finished)
        assert self._frontier is not None
        carry = GraphCarry(
            state=self._state,
            frontier=self._frontier,
            nodes=self._nodes,
            step=self._step,
            runs=self._runs + 1,
            events=self._events.carry(cycle=self._step, run=self._runs + 1),
        )
        workflow.continue_as_new(self._input.model_copy(update={"carry": carry}))

    def _set_status(self, status: GraphStatus) -> None:
        self._status = status
        if self._searchable:
            workflow.upsert_search_attributes([search.STATUS.value_set(status.value)])
        self._events.status(status.value, self._step)

    def _child_attributes(self, model: str) -> TypedSearchAttributes | None:
        return search.at_start(model, self._input.owner) if self._searchable else None

    def _fail(self, message: str, kind: str = "GraphFailed") -> NoReturn:
        self._error = message
        self._set_status(GraphStatus.FAILED)
        self._events.finished(GraphStatus.FAILED.value, error=message)
        workflow.logger.warning("graph failed: %s", message)
        raise ApplicationError(message, type=kind, non_retryable=True)

    def _result(self) -> GraphResult:
        output_field = self._spec.output
        output = self._state.get(output_field) if output_field else dict(self._state)
        return GraphResult(
            status=self._status,
            output=output,
            state=self._state,
            error=self._error,
            fingerprint=self._fingerprint,
            steps=self._step,
            runs=self._runs,
        )


def policy_workspace(graph_id: str) -> str:
    """The folder a graph's agents share: the graph's own, by its id."""
    return policy.own_workspace(graph_id)


async def _collect(calls: Sequence[Awaitable[Any]]) -> list[Any]:
    """Every item runs to its end; a failed item's result is ``None``."""
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, gp.NodeFailed):
            raise outcome  # not an item's failure: the run's (a cancel)
    return [None if isinstance(o, gp.NodeFailed) else o for o in outcomes]


async def _fail_fast(calls: Sequence[Awaitable[Any]]) -> list[Any]:
    """The first item to fail cancels the others and fails the node."""
    tasks = [asyncio.ensure_future(c) for c in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except gp.NodeFailed:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
