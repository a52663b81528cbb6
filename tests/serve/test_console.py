"""The web console in a real headless Chromium, used as a person uses it.

A person opens the printed URL, finds the agent in the list, watches its answer stream
in (a retried LLM call's text replaced, never shown twice), answers its question by
clicking an option, approves its tool call, and sees it complete; on a graph's page they
see the nodes drawn with their states and decide its gate. A screenshot of each page is
saved in the test's temporary folder.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.conftest import Harness
from tests.serve.browser import NO_CHROMIUM, Console, binaries, start_browser
from tests.serve.support import TOKEN, Served
from tests.serve.test_api import COLOURS, gate_graph, start
from tests.test_agent import call, finish
from tests.test_operating import ask

TODO, DONE = "Pick a colour", "completed"
STREAMED = "I will look at both colours carefully before I write anything down."


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    found = binaries()
    if found is None:
        pytest.skip(NO_CHROMIUM)
    driver = start_browser(*found)
    yield driver
    driver.quit()


def slow_answer_retried() -> dict[str, Any]:
    """A first step whose text streams slowly; its first attempt's stream is cut midway."""
    return {
        "content": STREAMED,
        # Done at once: `_task_finish` is refused while a todo is open.
        "tool_calls": [call("_todo_write", todos=[{"id": "1", "content": TODO, "status": DONE}])],
        "delay_seconds": 0.5,  # the page is open before the text starts
        "chunk_seconds": 0.1,
        "faults": [{"truncate_stream": True}],
    }


def open_agent(console: Console, url: str, agent_id: str) -> None:
    """Open the printed URL, find the agent in the list, open its page."""
    console.browser.get(f"{url}/#token={TOKEN}")
    console.element("h1", text="Agents and graphs")
    console.element("a", text=agent_id)
    console.shot("1-list")
    console.element("a", text=agent_id).click()


def watch_the_answer_stream(console: Console) -> None:
    """The first attempt's text streams in, the retry's replaces it, the message ends it."""
    retried = console.until(
        lambda b: console.texts('.msg.streaming[data-attempt="2"] .text'), "the retry's text"
    )
    assert console.texts('.msg.streaming[data-attempt="1"]') == []  # replaced, not kept
    console.shot("2-agent-streaming")
    assert STREAMED.startswith(retried[0]), retried
    console.element(".msg.assistant:not(.streaming)", text=STREAMED)
    console.until(lambda b: not console.texts(".msg.streaming"), "the stream replaced")
    assert sum(STREAMED in t for t in console.texts(".transcript .msg")) == 1


def answer_and_approve(console: Console) -> None:
    """Click an option, answer; approve the tool call; see the agent complete."""
    question = console.element("form.question", text="Which colour?")
    question.find_element(By.XPATH, ".//label[contains(., 'blue')]").click()
    question.find_element(By.XPATH, ".//button[.='Answer']").click()
    approval = console.element("article.approval", text="_write_file")
    assert "colour.txt" in approval.find_element(By.CSS_SELECTOR, "pre.arguments").text
    console.element(".todos", text=TODO)
    console.shot("3-agent-approval")
    approval.find_element(By.XPATH, ".//button[.='Approve']").click()
    console.element(".status .badge", text="completed")
    console.element(".status", text="colour.txt says blue")
    console.shot("4-agent-completed")


async def test_a_person_follows_answers_and_approves_an_agent(
    served: Served, h: Harness, browser: WebDriver, tmp_path: Path
) -> None:
    steps = [
        slow_answer_retried(),
        ask("Which colour?", options=COLOURS, selection="single"),
        {"tool_calls": [call("_write_file", path="colour.txt", content="blue")]},
        finish("colour.txt says blue"),
    ]
    task = h.script(steps)
    agent_id = await start(served, task, approval={"_write_file": "always"})
    console = Console(browser, tmp_path)
    await asyncio.to_thread(open_agent, console, served.url, agent_id)
    await asyncio.to_thread(watch_the_answer_stream, console)
    await asyncio.to_thread(answer_and_approve, console)
    written = await asyncio.to_thread((h.folder(agent_id) / "colour.txt").read_text)
    assert written == "blue"
    assert sorted(p.name for p in await asyncio.to_thread(tmp_path.glob, "*.png")) == [
        "1-list.png",
        "2-agent-streaming.png",
        "3-agent-approval.png",
        "4-agent-completed.png",
    ]


def decide_the_gate(console: Console, url: str, graph_id: str) -> None:
    console.browser.get(f"{url}/#token={TOKEN}")
    console.element("h1", text="Agents and graphs")
    console.browser.execute_script("location.hash = arguments[0]", f"#/graphs/{graph_id}")
    console.element("svg.graph g.node.n-done", text="write")
    console.element("svg.graph g.node.n-waiting", text="review")
    gate = console.element("form.gate", text="Approve the draft?")
    assert "the draft" in gate.text  # what the gate shows the person
    console.shot("5-graph-gate")
    answer = gate.find_element(By.CSS_SELECTOR, "textarea")
    assert answer.get_attribute("value") == '{"decision":"approve"}'  # from the schema
    gate.find_element(By.XPATH, ".//button[.='Decide']").click()
    console.element(".status .badge", text="completed")
    console.element("svg.graph g.node.n-done", text="review")
    console.shot("6-graph-completed")


async def test_a_person_sees_a_graph_drawn_and_decides_its_gate(
    served: Served, h: Harness, browser: WebDriver, tmp_path: Path
) -> None:
    marker = h.script([finish("the draft")]).removesuffix(" do the task")
    started = await served.http.post("/api/v1/graphs", json={"spec": gate_graph(marker)})
    graph_id = started.json()["id"]
    await asyncio.to_thread(decide_the_gate, Console(browser, tmp_path), served.url, graph_id)
    result = (await served.http.get(f"/api/v1/graphs/{graph_id}/result")).json()
    assert (result["status"], result["state"]["verdict"]) == ("completed", {"decision": "approve"})
