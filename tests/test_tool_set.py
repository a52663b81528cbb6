"""The built-in tool set inside real agent runs: approvals, skills, images, background."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from duragent.worker.client import start_agent
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import AgentInput, ApprovalDecision, PendingView
from tests.conftest import Harness, eventually
from tests.test_agent import call, finish, start, tool_messages

# A 1x1 PNG, written by hand: the smallest real image a model can be sent.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a3d1e6b1"
    "0000000049454e44ae426082"
)


async def test_a_dangerous_command_waits_for_approval(harness: Harness) -> None:
    task = harness.script(
        [
            {"tool_calls": [call("_bash", command="rm -rf /"), call("_bash", command="echo safe")]},
            finish(),
        ]
    )
    async with harness.worker():
        handle = await start(harness, task)

        async def gated() -> PendingView | None:
            view = await handle.query(AgentWorkflow.pending)
            return view if view.approvals else None

        [pending] = (await eventually(gated)).approvals
        assert pending.tool == "_bash" and "dangerous command" in pending.reason
        decision = ApprovalDecision(call_id=pending.call_id, action="reject", message="never")
        _ = await handle.execute_update(AgentWorkflow.decide, decision)
        await handle.result()

    dangerous, safe = tool_messages(harness.requests()[-1].body)
    assert dangerous == "ERROR (rejected): the user rejected this call: never"
    assert "safe" in safe  # the harmless call of the same cycle ran without asking


async def test_skills_are_listed_and_activated(harness: Harness) -> None:
    skill = harness.workspace / "skills" / "release-notes" / "SKILL.md"
    skill.parent.mkdir(parents=True)
    skill.write_text(
        "---\nname: release-notes\ndescription: How we write release notes\n---\n"
        "Group changes by user impact."
    )
    task = harness.script(
        [
            {"tool_calls": [{"name": "_activate_skill", "arguments": {"name": "release-notes"}}]},
            finish(),
        ]
    )
    async with harness.worker():
        await (await start(harness, task)).result()

    first, last = harness.requests()[0].body, harness.requests()[-1].body
    system = first["messages"][0]["content"]
    assert "- release-notes: How we write release notes" in system
    assert "Group changes by user impact." in tool_messages(last)[0]


async def test_an_image_reaches_the_next_llm_call_but_not_history(harness: Harness) -> None:
    (harness.workspace / "img").mkdir(parents=True)
    (harness.workspace / "img" / "dot.png").write_bytes(PNG)
    task = harness.script([{"tool_calls": [call("_read_image", path="dot.png")]}, finish()])
    async with harness.worker():
        handle = await start(harness, task, workspace="img")
        await handle.result()

    messages = harness.requests()[1].body["messages"]
    parts = messages[-1]["content"]
    assert messages[-1]["role"] == "user"
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    payloads = payload_text((await handle.fetch_history()).to_json_dict())
    assert "image-ref:" in payloads  # history keeps a reference ...
    assert "data:image/png;base64" not in payloads  # ... never the pixels


def payload_text(node: Any) -> str:
    """Every payload of a history (JSON form: base64 ``data`` fields), decoded."""
    if isinstance(node, dict):
        own = (
            base64.b64decode(node["data"]).decode(errors="replace")
            if "metadata" in node and "data" in node
            else ""
        )
        return own + "".join(payload_text(v) for v in node.values())
    if isinstance(node, list):
        return "".join(payload_text(v) for v in node)
    return ""


def background_step(agent_id: str) -> list[dict[str, Any]]:
    # The session id is derived from the call's idempotency key, so the script knows it.
    session = "bg-" + hashlib.sha256(f"{agent_id}:call_0_0".encode()).hexdigest()[:16]
    return [
        {"tool_calls": [call("_bash", command="sleep 30", background=True)]},
        {"tool_calls": [call("_check_background_command", session_id=session)], "delay_seconds": 1},
        finish(),
    ]


async def test_a_background_command_lost_with_its_worker_is_reported_lost(
    harness: Harness,
) -> None:
    agent_id = f"bg-{harness.task_queue}"
    task = harness.script(background_step(agent_id))
    async with harness.worker():
        input = AgentInput(task=task, model="scripted")
        handle = await start_agent(
            harness.client, input, task_queue=harness.task_queue, agent_id=agent_id
        )
        await eventually(lambda: any(r.step == 1 for r in harness.requests()))
        # Worker A stops (its background command with it) while cycle 2's LLM call runs.
    async with harness.worker():
        await handle.result()

    started, checked = tool_messages(harness.requests()[-1].body)
    assert "running" in started
    assert "lost with the worker that ran it" in checked
