"""Workspace backends: the same behaviour and the same refusals, local and in memory."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from activities.errors import ToolError
from activities.tools import LocalWorkspace, MemoryWorkspace, Workspace
from activities.tools.workspace import normalize_path


@pytest.fixture(params=["local", "memory"])
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Workspace:
    if request.param == "local":
        root = tmp_path / "ws"
        root.mkdir()
        return LocalWorkspace(root)
    return MemoryWorkspace()


ESCAPES = [
    ("../outside.txt", "path_escape"),
    ("a/../../outside.txt", "path_escape"),
    ("./../x", "path_escape"),
    ("..", "path_escape"),
    ("/etc/passwd", "path_escape"),
    ("//etc/passwd", "path_escape"),
    ("  /etc/passwd", "path_escape"),
    ("~/secrets", "path_escape"),
    ("~root/x", "path_escape"),
    ("bad\x00name", "invalid_path"),
]

# Every operation of the protocol, each given a path.
OPERATIONS: dict[str, Callable[[Workspace, str], Awaitable[object]]] = {
    "read_text": lambda ws, p: ws.read_text(p),
    "read_bytes": lambda ws, p: ws.read_bytes(p),
    "write_text": lambda ws, p: ws.write_text(p, "x"),
    "append": lambda ws, p: ws.write_text(p, "x", append=True),
    "write_bytes": lambda ws, p: ws.write_bytes(p, b"x"),
    "list_dir": lambda ws, p: ws.list_dir(p),
    "info": lambda ws, p: ws.info(p),
    "exists": lambda ws, p: ws.exists(p),
    "mkdir": lambda ws, p: ws.mkdir(p),
    "delete": lambda ws, p: ws.delete(p, recursive=True),
    "walk": lambda ws, p: ws.walk(p),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize(("path", "code"), ESCAPES)
async def test_paths_that_leave_the_workspace_are_refused(
    workspace: Workspace, operation: str, path: str, code: str
) -> None:
    with pytest.raises(ToolError) as err:
        await OPERATIONS[operation](workspace, path)
    assert err.value.code == code
    assert str(err.value)  # a message the model can read


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


async def test_read_write_append(workspace: Workspace) -> None:
    assert await workspace.write_text("d/e/f.txt", "one\n") == 4
    assert await workspace.write_text("d/e/f.txt", "two\n", append=True) == 4
    assert await workspace.read_text("d/e/f.txt") == "one\ntwo\n"
    assert await workspace.read_bytes("./d/e/../e/f.txt") == b"one\ntwo\n"
    await workspace.write_bytes("bin.dat", b"\xff\x00\xfe")
    with pytest.raises(ToolError) as err:
        await workspace.read_text("bin.dat")
    assert err.value.code == "binary_file"


async def test_listing_and_info(workspace: Workspace) -> None:
    await workspace.write_text("a.txt", "1\n2\n3")
    await workspace.write_text("sub/b.txt", "x")
    await workspace.mkdir("empty")
    assert await workspace.list_dir(".") == ["a.txt", "empty/", "sub/"]
    assert await workspace.list_dir("sub") == ["b.txt"]
    assert await workspace.list_dir("empty") == []
    info = await workspace.info("a.txt")
    assert (info.path, info.is_dir, info.size, info.line_count) == ("a.txt", False, 5, 3)
    assert info.mtime > 0
    assert (await workspace.info("sub/")).is_dir
    assert await workspace.exists("sub/b.txt")
    assert not await workspace.exists("nope")


async def test_walk_sorted_with_and_without_hidden(workspace: Workspace) -> None:
    for path in ["b.txt", "a/z.txt", "a/.hidden", ".git/config", "a/b/c.txt"]:
        await workspace.write_text(path, "x")
    assert await workspace.walk(".") == [
        ".git/config",
        "a/.hidden",
        "a/b/c.txt",
        "a/z.txt",
        "b.txt",
    ]
    assert await workspace.walk(".", include_hidden=False) == ["a/b/c.txt", "a/z.txt", "b.txt"]
    assert await workspace.walk("a/b") == ["a/b/c.txt"]
    assert await workspace.walk("b.txt") == ["b.txt"]


async def test_delete(workspace: Workspace) -> None:
    await workspace.write_text("d/f.txt", "x")
    with pytest.raises(ToolError) as err:
        await workspace.delete("d")
    assert err.value.code == "not_empty"
    await workspace.delete("d/f.txt")
    assert await workspace.list_dir("d") == []  # the folder stays, as on disk
    await workspace.write_text("d/g.txt", "x")
    await workspace.delete("d", recursive=True)
    assert not await workspace.exists("d") and not await workspace.exists("d/g.txt")
    with pytest.raises(ToolError) as err:
        await workspace.delete(".")
    assert err.value.code == "invalid_path"


@pytest.mark.parametrize(
    ("operation", "path", "code"),
    [
        ("read_text", "missing.txt", "not_found"),
        ("read_text", "folder", "is_directory"),
        ("write_text", "folder", "is_directory"),
        ("write_text", "file.txt/inner.txt", "not_a_directory"),
        ("list_dir", "file.txt", "not_a_directory"),
        ("list_dir", "missing", "not_found"),
        ("mkdir", "file.txt", "not_a_directory"),
        ("info", "missing", "not_found"),
        ("delete", "missing", "not_found"),
        ("walk", "missing", "not_found"),
    ],
)
async def test_errors_are_the_same_in_both_backends(
    workspace: Workspace, operation: str, path: str, code: str
) -> None:
    await workspace.write_text("file.txt", "x")
    await workspace.mkdir("folder")
    with pytest.raises(ToolError) as err:
        await OPERATIONS[operation](workspace, path)
    assert err.value.code == code


async def test_memory_workspace_from_a_mapping() -> None:
    ws = MemoryWorkspace({"a/b.txt": "text", "c.bin": b"\x00"})
    assert await ws.read_text("a/b.txt") == "text"
    assert await ws.read_bytes("c.bin") == b"\x00"
    assert (await ws.info("c.bin")).line_count is None
