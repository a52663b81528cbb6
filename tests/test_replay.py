"""Replay committed histories with today's code: running agents must not break."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from tests.conftest import Harness
from tests.replay import HISTORIES, replay
from tests.test_agent import call, finish, start

RECORDED = sorted(HISTORIES.glob("*.json"))


def test_there_are_recorded_histories() -> None:
    assert RECORDED, "tests/histories holds no recorded history"


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path) -> None:
    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    history = WorkflowHistory.from_json(path.stem.split("@")[0], text)
    result = await replay(history)
    assert result.replay_failure is None, result.replay_failure


async def test_a_fresh_history_replays(harness: Harness) -> None:
    task = harness.script([{"tool_calls": [call("_list_files")]}, {"content": "hm"}, finish()])
    async with harness.worker():
        handle = await start(harness, task)
        await handle.result()
    result = await replay(await handle.fetch_history())
    assert result.replay_failure is None, result.replay_failure
