"""What only one backend has: a local workspace's symlinks, a memory one's seed mapping.

Everything the backends share is in ``test_workspace_protocol.py``, run against each.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from pathlib import Path

import pytest

from duragent.activities.errors import ToolError
from duragent.activities.tools import LocalWorkspace, MemoryWorkspace
from duragent.activities.tools.workspace import INLINE_IO_BYTES, normalize_path
from tests.test_workspace_protocol import OPERATIONS


@pytest.fixture
def linked(tmp_path: Path) -> LocalWorkspace:
    """A local workspace with symlinks leading out (to a folder and a file) and in."""
    root, outside = tmp_path / "ws", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "inside.txt").write_text("fine")
    os.symlink(outside, root / "out_dir")
    os.symlink(outside / "secret.txt", root / "out_file")
    os.symlink(tmp_path / "nowhere", root / "dangling")
    os.symlink(root / "inside.txt", root / "in_file")
    return LocalWorkspace(root)


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("path", ["out_dir", "out_dir/secret.txt", "out_file", "dangling/x"])
async def test_symlinks_that_lead_outside_are_refused(
    linked: LocalWorkspace, operation: str, path: str
) -> None:
    if operation == "delete" and path in ("out_dir", "out_file"):
        pytest.skip("deleting a link removes the link itself; tested below")
    with pytest.raises(ToolError) as err:
        await OPERATIONS[operation](linked, path)
    assert err.value.code == "path_escape"


async def test_deleting_a_link_removes_the_link_not_its_target(
    linked: LocalWorkspace, tmp_path: Path
) -> None:
    await linked.delete("out_dir")
    await linked.delete("out_file")
    assert (tmp_path / "outside" / "secret.txt").read_text() == "secret"
    assert not (linked.root / "out_dir").exists()


async def test_a_walk_never_follows_links_outside(linked: LocalWorkspace) -> None:
    assert await linked.walk(".") == ["in_file", "inside.txt"]
    assert await linked.read_text("in_file") == "fine"


async def test_a_workspace_root_that_is_a_symlink_still_works(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "alias")
    ws = LocalWorkspace(tmp_path / "alias")
    await ws.write_text("a.txt", "A")
    assert (tmp_path / "real" / "a.txt").read_text() == "A"


@pytest.mark.parametrize(
    ("path", "normal"),
    [("", "."), (".", "."), ("./", "."), ("a/./b/../c", "a/c"), ("a//b/", "a/b"), ("a/..", ".")],
)
def test_normalisation(path: str, normal: str) -> None:
    assert normalize_path(path) == normal


async def test_memory_workspace_from_a_mapping() -> None:
    ws = MemoryWorkspace({"a/b.txt": "text", "c.bin": b"\x00"})
    assert await ws.read_text("a/b.txt") == "text"
    assert await ws.read_bytes("c.bin") == b"\x00"
    assert (await ws.info("c.bin")).line_count is None


async def ticks_while(call: Awaitable[object]) -> int:
    """How often another task ran on the event loop while ``call`` was awaited."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)  # one loop turn: what the test counts (ok)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)  # a yield, not a wait: let it start (ok)
    before = ticks
    await call
    ticker.cancel()
    return ticks - before


async def test_big_local_files_and_walks_leave_the_event_loop_free(tmp_path: Path) -> None:
    """Past the inline size, and for walks, the I/O runs in a thread; small files inline."""
    ws = LocalWorkspace(tmp_path)
    await ws.write_bytes("big.bin", b"x" * (INLINE_IO_BYTES + 1))
    await ws.write_bytes("small.bin", b"x")
    for i in range(200):
        await ws.write_text(f"tree/d{i % 10}/f{i}", "")
    assert await ticks_while(ws.read_bytes("small.bin")) == 0
    assert await ticks_while(ws.read_bytes("big.bin")) > 0
    assert await ticks_while(ws.write_bytes("big2.bin", b"y" * (INLINE_IO_BYTES + 1))) > 0
    assert await ticks_while(ws.walk("tree")) > 0
    assert await ticks_while(ws.delete("tree", recursive=True)) > 0
