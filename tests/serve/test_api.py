"""``duragent serve`` over real HTTP: a real server process, a real worker, real Temporal.

The server runs as its own process (``duragent serve --port 0``) on the session's dev
server, with an in-process worker on the module's task queue and the scripted LLM; the
client is httpx over a loopback socket.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from duragent.activities.events import EVENT_TYPES
from tests.conftest import Harness, eventually
from tests.processes import cli, worker_env
from tests.serve.support import TOKEN, Served, read_sse, serve
from tests.test_agent import call, finish
from tests.test_operating import ask

COLOURS = ["red", "blue"]


async def start(served: Served, task: str, **body: Any) -> str:
    response = await served.http.post("/api/v1/agents", json={"task": task, **body})
    assert response.status_code == 201, response.text
    agent_id: str = response.json()["id"]
    assert response.headers["location"] == f"/api/v1/agents/{agent_id}"
    return agent_id


async def status_of(served: Served, path: str) -> str:
    response = await served.http.get(path)
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


async def reaches(served: Served, path: str, status: str) -> None:
    async def there() -> bool:
        return await status_of(served, path) == status

    await eventually(there, f"{path} {status}", within=30)


def colour_steps() -> list[dict[str, Any]]:
    """Ask a colour, write it (a call that needs approval), finish."""
    return [
        ask("Which colour?", options=COLOURS, selection="single"),
        {"tool_calls": [call("_write_file", path="colour.txt", content="blue")]},
        finish("colour.txt says blue"),
    ]


# --- auth ------------------------------------------------------------------------------


async def test_api_requests_need_the_bearer_token(served: Served) -> None:
    async with httpx2.AsyncClient(base_url=served.url) as anonymous:
        for method, path in [
            ("GET", "/api/v1/agents"),
            ("POST", "/api/v1/agents"),
            ("GET", "/api/v1/graphs/g-1"),
            ("GET", "/api/v1/agents/a-1/events"),
            ("POST", "/api/v1/session"),
        ]:
            for headers in ({}, {"authorization": f"Bearer {TOKEN}x"}, {"authorization": TOKEN}):
                refused = await anonymous.request(method, path, headers=headers)
                assert refused.status_code == 401, (method, path, headers, refused.text)
                assert "bearer token" in refused.json()["error"]
                assert refused.headers["www-authenticate"].startswith("Bearer")
        # The console's own files and the health check hold no data: no token needed.
        page = await anonymous.get("/")
        assert page.status_code == 200 and "<main" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert (await anonymous.get("/api/v1/health")).json() == {"ok": True}
        # The events cookie opens the event streams and nothing else.
        session = await served.http.post("/api/v1/session")
        assert session.status_code == 204
        cookie = session.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
        anonymous.cookies = session.cookies
        assert (await anonymous.get("/api/v1/agents")).status_code == 401
        missing = await anonymous.get("/api/v1/agents/no-such-agent/events")
        assert missing.status_code == 404, missing.text  # past auth: the run is looked up


async def test_a_loopback_server_without_a_token_makes_one_up_and_prints_it(
    h: Harness, tmp_path: Path
) -> None:
    async with serve(h, tmp_path / "serve.log", token=None) as server:
        printed = server.log.read_text()
        token = printed.split("this run's token is ")[1].split()[0]
        assert f"{server.url}/#token={token}" in printed
        assert len(token) >= 32
        async with httpx2.AsyncClient(base_url=server.url) as anonymous:
            assert (await anonymous.get("/api/v1/agents")).status_code == 401
            allowed = await anonymous.get(
                "/api/v1/agents", headers={"authorization": f"Bearer {token}"}
            )
            assert allowed.status_code == 200, allowed.text


async def test_serve_refuses_a_public_address_without_a_token(h: Harness) -> None:
    env = {**worker_env(h), "DURAGENT_API_TOKEN": ""}
    public = await cli(env, "serve", "--host", "0.0.0.0", "--port", "0")
    assert public.returncode == 2
    assert public.stderr.strip().splitlines() == [
        "duragent: error: refusing to serve on 0.0.0.0 without a token: set "
        "DURAGENT_API_TOKEN (at least 16 characters), or serve on 127.0.0.1"
    ]
    short = await cli({**env, "DURAGENT_API_TOKEN": "hunter2"}, "serve", "--port", "0")
    assert short.returncode == 2
    assert "DURAGENT_API_TOKEN is 7 characters; at least 16" in short.stderr


# --- bad input -------------------------------------------------------------------------


BAD_REQUESTS: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/api/v1/agents", {"json": {}}, "task"),
    ("POST", "/api/v1/agents", {"json": {"task": "   "}}, "task"),
    ("POST", "/api/v1/agents", {"json": {"task": "t", "max_cycles": 0}}, "max_cycles"),
    ("POST", "/api/v1/agents", {"json": {"task": "t", "tools": ["no spaces"]}}, "tools"),
    ("POST", "/api/v1/agents", {"json": {"task": "t", "colour": "red"}}, "colour"),
    ("POST", "/api/v1/agents", {"json": {"task": "t", "id": " padded "}}, "id"),
    ("POST", "/api/v1/agents", {"content": b'{"task": '}, "body"),
    (
        "POST",
        "/api/v1/agents",
        {"json": {"task": "t", "approval": {"_write_file": "sometimes"}}},
        "approval._write_file",
    ),
    ("POST", "/api/v1/agents/a-1/reply", {"json": {"answer": []}}, "answer"),
    (
        "POST",
        "/api/v1/agents/a-1/decide",
        {"json": {"call_id": "c", "action": "edit"}},
        "arguments",
    ),
    ("POST", "/api/v1/agents/a-1/decide", {"json": {"call_id": "c", "action": "ok"}}, "action"),
    ("POST", "/api/v1/agents/a-1/say", {"json": {"message": ""}}, "message"),
    ("POST", "/api/v1/agents/a-1/cancel", {"json": {"reason": 7}}, "reason"),
    ("GET", "/api/v1/agents?limit=0", {}, "limit"),
    ("GET", "/api/v1/agents?status=asleep", {}, "status"),
    ("GET", "/api/v1/graphs?status=waiting_approval", {}, "status"),
    ("GET", "/api/v1/agents/a-1/transcript?limit=501", {}, "limit"),
    ("GET", "/api/v1/agents/a-1/events", {"headers": {"last-event-id": "ten"}}, "Last-Event-ID"),
    ("POST", "/api/v1/graphs", {"json": {"spec": {"graph": "g"}, "input": []}}, "input"),
    (
        "POST",
        "/api/v1/graphs/g-1/decide",
        {"json": {"gate_id": "review@1", "answer": "x" * 40_000}},
        "answer",
    ),
]


@pytest.mark.parametrize(("method", "path", "request_args", "field"), BAD_REQUESTS)
async def test_bad_input_gets_422_naming_the_field(
    served: Served, method: str, path: str, request_args: dict[str, Any], field: str
) -> None:
    response = await served.http.request(method, path, **request_args)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field, body
    assert body["error"].startswith(f"{field}: "), body


async def test_a_graph_spec_with_problems_gets_every_problem_with_its_field(
    served: Served,
) -> None:
    spec = {
        "graph": "broken",
        "nodes": {"a": {"task": {"ref": "x"}}, "b": {"graph": {"file": "child.yaml"}}},
        "edges": [["START", "a", "nowhere"]],
    }
    response = await served.http.post("/api/v1/graphs", json={"spec": spec})
    assert response.status_code == 422, response.text
    fields = [e["field"] for e in response.json()["errors"]]
    assert "spec.nodes.b.graph.file" in fields, fields
    assert all(f.startswith("spec") for f in fields) and len(fields) >= 2, fields


async def test_a_body_over_the_limit_gets_413(served: Served) -> None:
    too_big = b'{"task": "' + b"x" * 1_600_000 + b'"}'
    declared = await served.http.post("/api/v1/agents", content=too_big)
    assert declared.status_code == 413, declared.text
    assert "larger than 1,500,000 bytes" in declared.json()["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for _ in range(20):
            yield b"x" * 100_000

    streamed = await served.http.post("/api/v1/agents", content=chunks())
    assert streamed.status_code == 413, streamed.text
    assert (await served.http.get("/api/v1/health")).status_code == 200


# --- an agent through the API ----------------------------------------------------------


async def test_start_list_read_answer_and_approve_an_agent(served: Served, h: Harness) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    approval = {"_write_file": "always"}
    task = h.script(colour_steps())
    agent_id = await start(served, task, owner=owner, approval=approval)
    path = f"/api/v1/agents/{agent_id}"
    await reaches(served, path, "waiting_user")

    async def listed() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = (
            await served.http.get(f"/api/v1/agents?owner={owner}")
        ).json()["agents"]
        return rows

    rows = await eventually(listed, "the agent in visibility", within=30)
    assert [(r["id"], r["owner"], r["model"]) for r in rows] == [(agent_id, owner, "scripted")]
    page = (await served.http.get(f"{path}/transcript?limit=5")).json()
    assert page["messages"][0] == {**page["messages"][0], "role": "user", "content": task}
    pending = (await served.http.get(f"{path}/pending")).json()
    question = pending["items"][0]
    assert question["question"]["options"] == COLOURS

    async def refused(kind: str, body: dict[str, Any], status: int, says: str) -> None:
        response = await served.http.post(f"{path}/{kind}", json=body)
        assert response.status_code == status, response.text
        assert says in response.json()["error"], response.text

    await refused("reply", {"answer": "blue", "question_id": "call_old"}, 409, "stale reply")
    await refused("reply", {"answer": "green"}, 409, "'green' is not one of the options: red, blue")
    answered = await served.http.post(
        f"{path}/reply", json={"answer": "blue", "question_id": question["id"]}
    )
    assert answered.json() == {"question_id": question["id"]}

    await reaches(served, path, "waiting_approval")
    approval = (await served.http.get(f"{path}/pending")).json()["items"][0]["approval"]
    assert approval["tool"] == "_write_file" and '"colour.txt"' in approval["arguments"]
    assert approval["reason"] and approval["fingerprint"]
    await refused("reply", {"answer": "blue", "question_id": "q"}, 409, "no question is pending")
    await refused(
        "decide",
        {"call_id": "nope", "action": "approve"},
        409,
        "no pending approval for call 'nope'",
    )
    wrong_print = {"call_id": approval["call_id"], "action": "approve", "fingerprint": "f00"}
    await refused("decide", wrong_print, 409, "fingerprint mismatch")
    bad_edit = {"call_id": approval["call_id"], "action": "edit", "arguments": {"path": 3}}
    await refused("decide", bad_edit, 422, "path")
    decided = await served.http.post(
        f"{path}/decide", json={"call_id": approval["call_id"], "action": "approve"}
    )
    assert decided.json() == {"call_id": approval["call_id"], "action": "approve"}

    await reaches(served, path, "completed")
    result = (await served.http.get(f"{path}/result")).json()
    assert (result["status"], result["answer"], result["running"]) == (
        "completed",
        "colour.txt says blue",
        False,
    )
    assert (await served.http.get(f"{path}/usage")).json()["llm_calls"] == 3
    assert (await served.http.get(f"{path}/todos")).json() == {"todos": []}
    await refused("reply", {"answer": "red"}, 409, "has ended")


async def test_events_resume_after_the_last_event_id(served: Served, h: Harness) -> None:
    steps = [{"content": "Thinking about colours.", **ask(options=COLOURS)}, finish("blue it is")]
    path = f"/api/v1/agents/{await start(served, h.script(steps))}"
    first = await read_sse(served.http, f"{path}/events", until="question")
    ids = [int(m.id or -1) for m in first]
    assert ids == sorted(set(ids)) and ids[0] == 0, ids
    assert all(m.data["offset"] == int(m.id or -1) and m.event in EVENT_TYPES for m in first)
    assert first[0].event == "status"
    assert "".join(m.data["text"] for m in first if m.event == "token") == "Thinking about colours."
    assert first[-1].data["options"] == COLOURS

    middle = first[len(first) // 2]
    resumed = await read_sse(
        served.http, f"{path}/events", until="question", headers={"last-event-id": str(middle.id)}
    )
    assert [m.data for m in resumed] == [
        m.data for m in first if int(m.id or -1) > int(middle.id or -1)
    ]
    started_at = await read_sse(served.http, f"{path}/events?from={middle.id}", until="question")
    assert started_at[0].id == middle.id

    await served.http.post(f"{path}/reply", json={"answer": "blue"})
    rest = await read_sse(
        served.http, f"{path}/events", until="end", headers={"last-event-id": str(first[-1].id)}
    )
    assert [m.event for m in rest][-2:] == ["finished", "end"]
    assert rest[-2].data["status"] == "completed" and rest[-1].data == {"reason": "finished"}
    assert int(rest[0].id or -1) == int(first[-1].id or -1) + 1


async def test_cancel_and_what_an_ended_or_unknown_agent_answers(
    served: Served, h: Harness
) -> None:
    path = f"/api/v1/agents/{await start(served, h.script([ask()]))}"
    await reaches(served, path, "waiting_user")
    cancelled = await served.http.post(f"{path}/cancel", json={"reason": "not needed"})
    assert cancelled.status_code == 202, cancelled.text
    await reaches(served, path, "cancelled")
    result = (await served.http.get(f"{path}/result")).json()
    assert result["status"] == "cancelled", result
    for kind, body in [("cancel", {}), ("say", {"message": "hello?"})]:
        again = await served.http.post(f"{path}/{kind}", json=body)
        assert again.status_code == 409 and again.json()["ended"] is True, again.text
    missing = await served.http.get("/api/v1/agents/no-such-agent")
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": "no agent with id 'no-such-agent'"},
    )
    unknown = await served.http.get("/api/v1/nothing-here")
    assert unknown.status_code == 404 and unknown.json()["error"] == "Not Found"


def gate_graph(marker: str) -> dict[str, Any]:
    return {
        "graph": "reviewed",
        "state": {"draft": {"type": "string"}, "verdict": {"type": "object"}},
        "nodes": {
            "write": {"agent": {"task": f"{marker} write a draft"}, "writes": "draft"},
            "review": {
                "gate": {
                    "prompt": "Approve the draft?",
                    "show": "${draft}",
                    "answer": {
                        "type": "object",
                        "properties": {"decision": {"enum": ["approve", "revise"]}},
                        "required": ["decision"],
                    },
                },
                "writes": "verdict",
                "max_visits": 2,
                "on_exhausted": "END",
            },
        },
        "edges": [
            ["START", "write", "review"],
            {
                "from": "review",
                "on": "${verdict.decision}",
                "to": {"approve": "END", "revise": "write"},
            },
        ],
    }


async def test_a_graph_through_the_api(served: Served, h: Harness) -> None:
    marker = h.script([finish("the draft")]).removesuffix(" do the task")
    started = await served.http.post("/api/v1/graphs", json={"spec": gate_graph(marker)})
    assert started.status_code == 201, started.text
    path = started.headers["location"]
    await reaches(served, path, "waiting_user")
    run = (await served.http.get(path)).json()
    assert [n["name"] for n in run["graph"]["nodes"]] == ["write", "review"]
    assert {"source": "review", "target": "write", "label": "revise", "dashed": False} in run[
        "graph"
    ]["edges"]
    assert {n["name"]: n["status"] for n in run["nodes"]} == {"write": "done", "review": "waiting"}
    assert "review" in run["mermaid"] and "classDef" in run["mermaid"]
    gates = (await served.http.get(f"{path}/pending")).json()["gates"]
    assert [(g["id"], g["prompt"]) for g in gates] == [("review@1", "Approve the draft?")]
    wrong = await served.http.post(
        f"{path}/decide", json={"gate_id": "review@1", "answer": {"decision": "maybe"}}
    )
    assert wrong.status_code == 409 and "'maybe' is not one of" in wrong.json()["error"], wrong.text
    right = await served.http.post(
        f"{path}/decide", json={"gate_id": "review@1", "answer": {"decision": "approve"}}
    )
    assert right.json() == {"gate_id": "review@1"}
    await reaches(served, path, "completed")
    assert (await served.http.get(f"{path}/result")).json()["state"]["draft"] == "the draft"
    as_agent = await served.http.get(path.replace("/graphs/", "/agents/"))
    assert as_agent.status_code == 404 and "not an agent" in as_agent.json()["error"]
