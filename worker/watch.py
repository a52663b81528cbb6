"""``duragent watch ID``: follow an agent or a graph live, from its event stream.

Text streams in as the model writes it; tool calls, waits and node visits are shown as
they happen; a question prints the exact command that answers it, an approval the one
that approves it. With ``--json`` each event is printed as it comes, one JSON object a
line (``type``, ``offset``, ``agent_id`` or ``graph_id``, the rest of the event).

A run started before live events publishes none: it is followed by polling its
queries, as ``watch`` did before (agents only).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import JsonValue
from temporalio.client import Client

from duragent.activities.models import Message, Role
from duragent.worker import render
from duragent.worker.cli_args import EXIT_NOT_COMPLETED, EXIT_OK
from duragent.worker.client import CLOSED_STATUS
from duragent.worker.events import NoStream, subscribe
from duragent.worker.graph_render import gate_lines
from duragent.worker.pending_tree import PendingItem, PendingKind, item_lines
from duragent.worker.settings import Settings
from duragent.workflows.graph_models import GateView
from duragent.workflows.models import PendingApproval, PendingQuestion


async def watch(client: Client, args: argparse.Namespace, settings: Settings) -> int:
    """Follow a run live until it ends; the exit code says whether it completed."""
    from duragent.worker.inspection import print_where  # inspection imports the CLI's parts

    shown = _Shown(args.agent_id, as_json=args.json)
    try:
        async for event in subscribe(client, args.agent_id, from_offset=args.offset):
            if not shown.count and not args.json and "agent_id" in event:
                await print_where(client, args.agent_id)  # its trace, tree and metrics
            shown.event(event)
    except NoStream:
        if shown.count or args.json:
            raise
        from duragent.worker.inspection import watch as watch_by_polling

        return await watch_by_polling(client, args, settings)
    shown.end_text()
    if shown.outcome is None and not args.json:
        # Closed by Temporal itself (terminated, timed out, a graph cancelled): no event.
        closed = (await client.get_workflow_handle(args.agent_id).describe()).status
        _out(f"status: {CLOSED_STATUS.get(closed, 'unknown') if closed else 'unknown'}")
    return EXIT_OK if shown.outcome == "completed" else EXIT_NOT_COMPLETED


@dataclass
class _Shown:
    """What the watch has printed so far: the streamed text in progress, the last status."""

    root: str
    as_json: bool
    count: int = 0
    outcome: str | None = None
    status: str = ""
    streaming: tuple[Any, ...] | None = None
    """(cycle, call, attempt) of the text being streamed, while a line is open."""
    streamed: set[int] = field(default_factory=set)
    """Cycles whose text was streamed (their assistant message need not be repeated)."""
    next_index: int = 0
    """The transcript index the next message will have (where streamed text will land)."""

    def event(self, event: dict[str, JsonValue]) -> None:
        self.count += 1
        if event.get("type") == "finished":
            self.outcome = str(event.get("status"))
        if self.as_json:
            _out(json.dumps(event, ensure_ascii=False))
            return
        kind = str(event.get("type"))
        if kind == "token":
            self._token(event)
            return
        self.end_text()
        show = _SHOW.get(kind)
        if show is not None:
            for line in show(self, event):
                _out(line)

    def _token(self, event: dict[str, JsonValue]) -> None:
        key = (event.get("cycle"), event.get("call"), event.get("attempt"))
        if self.streaming is not None and key[:2] == self.streaming[:2] and key != self.streaming:
            self.end_text()
            _out(f"     (attempt {key[2]} of the LLM call: its text again)")
        if self.streaming != key:
            self.end_text()
            _write(f"{self.next_index:>4}    assistant: ")
            self.streaming = key
        if isinstance(event.get("cycle"), int):
            self.streamed.add(int(str(event["cycle"])))
        _write(str(event.get("text") or ""))

    def end_text(self) -> None:
        """Close a line of streamed text."""
        if self.streaming is not None:
            _write("\n")
            self.streaming = None

    def _status(self, event: dict[str, JsonValue]) -> list[str]:
        line = f"[{_step(event)} {event.get('cycle', 0)}] {event.get('status')}"
        if event.get("waiting_for"):
            line += f": {event['waiting_for']}"
        if line == self.status:
            return []
        self.status = line
        return [line]

    def _compaction(self, event: dict[str, JsonValue]) -> list[str]:
        self.next_index = int(str(event.get("transcript_length", 0)))
        return [
            f"[cycle {event.get('cycle', 0)}] memory compacted: {event.get('replaced', 0)} "
            f"messages summarized, {self.next_index} left"
        ]

    def _message(self, event: dict[str, JsonValue]) -> list[str]:
        message = Message.model_validate(event.get("message") or {"role": "user"})
        index = int(str(event.get("index", 0)))
        self.next_index = index + 1
        if message.role is Role.ASSISTANT and event.get("cycle") in self.streamed:
            message = message.model_copy(update={"content": None})  # streamed already
        return render.message_lines(index, message)

    def _question(self, event: dict[str, JsonValue]) -> list[str]:
        if event.get("state") == "resolved":
            answer = event.get("answer")
            said = answer if isinstance(answer, str) else json.dumps(answer)
            return [f"     {event.get('kind')} {event.get('id')} answered: {said}"]
        if event.get("kind") == "gate":
            gate = GateView(
                id=str(event.get("id")),
                node=str(event.get("node")),
                prompt=str(event.get("question")),
                show=event.get("show"),
                answer_schema=_object(event.get("answer_schema")),
            )
            return gate_lines(self.root, gate, root=self.root)
        question = PendingQuestion.model_validate(event)
        asked_by = str(event.get("asked_by") or self.root)
        return item_lines(_pending(self.root, asked_by, question), root=self.root)

    def _approval(self, event: dict[str, JsonValue]) -> list[str]:
        if event.get("state") == "resolved":
            return [f"     approval {event.get('call_id')}: {event.get('decision')}"]
        approval = PendingApproval.model_validate(event)
        item = PendingItem(
            kind=PendingKind.APPROVAL,
            id=approval.call_id,
            send_to=self.root,
            asked_by=self.root,
            command=f"duragent approve {_q(self.root)} {_q(approval.call_id)}",
            approval=approval,
        )
        return item_lines(item, root=self.root)


def _pending(root: str, asked_by: str, question: PendingQuestion) -> PendingItem:
    return PendingItem(
        kind=PendingKind.QUESTION,
        id=question.id,
        send_to=root,
        asked_by=asked_by,
        command=f'duragent reply {_q(root)} --question-id {_q(question.id)} "ANSWER"',
        question=question,
    )


def _tool_started(_: _Shown, event: dict[str, JsonValue]) -> list[str]:
    return [f"     .. {event.get('name')} running  [{event.get('call_id')}]"]


def _tool_finished(_: _Shown, event: dict[str, JsonValue]) -> list[str]:
    took = f"in {event.get('duration_ms', 0)} ms"
    return [f"     .. {event.get('name')} {event.get('status')} {took}  [{event.get('call_id')}]"]


def _continued(_: _Shown, event: dict[str, JsonValue]) -> list[str]:
    return [f"[{_step(event)} {event.get('cycle', 0)}] continued as new (run {event.get('run')})"]


def _node(_: _Shown, event: dict[str, JsonValue]) -> list[str]:
    line = f"node {event.get('node')} ({event.get('kind')}) visit {event.get('visit')}: "
    line += str(event.get("status"))
    children = event.get("children")
    if isinstance(children, list) and children:
        line += "  children: " + ", ".join(str(c) for c in children)
    if event.get("error"):
        line += f"  error: {event['error']}"
    return [line]


def _finished(_: _Shown, event: dict[str, JsonValue]) -> list[str]:
    lines = [f"status: {event.get('status')}"]
    result = event.get("result")
    if result is not None:
        shown = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
        typed = event.get("graph_id") or not isinstance(result, str)
        lines.append(f"{'output' if typed else 'answer'}: {shown}")
    if event.get("error"):
        lines.append(f"error: {event['error']}")
    return lines


_SHOW: dict[str, Callable[[_Shown, dict[str, JsonValue]], list[str]]] = {
    "status": _Shown._status,
    "message": _Shown._message,
    "question": _Shown._question,
    "approval": _Shown._approval,
    "tool_started": _tool_started,
    "tool_finished": _tool_finished,
    "compaction": _Shown._compaction,
    "continued_as_new": _continued,
    "node": _node,
    "finished": _finished,
}
"""How each event type is shown to a person (tokens are written as they stream)."""


def _step(event: dict[str, JsonValue]) -> str:
    return "step" if event.get("graph_id") else "cycle"


def _q(value: str) -> str:
    return shlex.quote(value)


def _object(value: JsonValue) -> dict[str, JsonValue] | None:
    return value if isinstance(value, dict) else None


def _out(line: str) -> None:
    print(line, flush=True)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
