"""The workspace protocol, the same on every backend: local, in memory, object store.

One suite, run against each backend alike: every method of the protocol and every
error code, the paths that try to leave the workspace, then the file tools as the
worker runs them (``run_tool`` in an ActivityEnvironment): ranges of ``_read_file``,
``_file_str_replace``, ``_workspace_grep``, ``_list_files`` with globs. The object
store is a real S3 server (SeaweedFS, see ``tests/objectstore.py``); its cases skip,
saying why, only where it cannot be built.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from duragent.activities.errors import ToolError
from duragent.activities.models import ToolCall, ToolRequest, ToolStatus
from duragent.activities.tools import (
    LocalWorkspace,
    MemoryWorkspace,
    ToolRegistry,
    Workspace,
    default_tools,
)
from duragent.activities.tools.activity import ToolActivities
from duragent.activities.tools.files import MAX_LIST_ENTRIES, MAX_READ_CHARS, MAX_READ_LINES
from duragent.activities.tools.objectstore_workspace import S3Workspace
from duragent.activities.tools.search import (
    FETCH_BYTES,
    LOOKUP_BATCH,
    MAX_FILE_BYTES,
    MAX_LINE_CHARS,
    _groups_by_size,
)
from duragent.activities.tools.workspace import INLINE_IO_BYTES
from tests.objectstore import ObjectStoreServer

BACKENDS = ["local", "memory", pytest.param("s3", marks=pytest.mark.object_store)]
# The whole suite again through one agent's scoped view (``Workspace.scoped``), whose
# folder does not exist yet: the rules are the view's, relative to its own root.
SCOPED = ["local-scoped", "memory-scoped"]


@pytest.fixture(scope="module")
def bucket(object_store: ObjectStoreServer) -> str:
    """One bucket for the module; each test gets a prefix of its own in it."""
    return object_store.create_bucket()


@pytest.fixture(params=BACKENDS)
def base(request: pytest.FixtureRequest, tmp_path: Path) -> Workspace:
    """A workspace root of each backend (for the scoping tests)."""
    return backend(request, tmp_path, request.param)


@pytest.fixture(params=[*BACKENDS, *SCOPED])
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Workspace:
    kind, _, scoped = request.param.partition("-")
    found = backend(request, tmp_path, kind)
    return found.scoped("agents/agent-1") if scoped else found


def backend(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> Workspace:
    if kind == "local":
        root = tmp_path / "ws"
        root.mkdir()
        return LocalWorkspace(root)
    if kind == "memory":
        return MemoryWorkspace()
    server: ObjectStoreServer = request.getfixturevalue("object_store")
    bucket: str = request.getfixturevalue("bucket")
    # Under a prefix, as a deployment runs it: nothing may reach the bucket's root.
    return S3Workspace(server.config(bucket, f"agents/{uuid.uuid4().hex[:12]}"))


async def write_all(workspace: Workspace, files: Mapping[str, str | bytes]) -> None:
    """Write many files at once (an object store answers each in a round trip)."""

    async def write(path: str, content: str | bytes) -> None:
        if isinstance(content, bytes):
            await workspace.write_bytes(path, content)
        else:
            await workspace.write_text(path, content)

    await asyncio.gather(*(write(path, content) for path, content in files.items()))


async def code_of(call: Awaitable[object]) -> str:
    """The code of the ``ToolError`` a call raises (it must raise one, with a message)."""
    with pytest.raises(ToolError) as err:
        await call
    assert str(err.value)  # a message the model can read
    return err.value.code


# ==== the protocol ========================================================================

ESCAPES = [
    ("../outside.txt", "path_escape"),
    ("../x", "path_escape"),
    ("a/../../outside.txt", "path_escape"),
    ("a/../../b", "path_escape"),
    ("./../x", "path_escape"),
    ("..", "path_escape"),
    ("/etc/passwd", "path_escape"),
    ("//etc/passwd", "path_escape"),
    ("  /etc/passwd", "path_escape"),
    ("~/x", "path_escape"),
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
    assert await code_of(OPERATIONS[operation](workspace, path)) == code


async def test_read_write_append(workspace: Workspace) -> None:
    assert await workspace.write_text("d/e/f.txt", "one\n") == 4
    assert await workspace.write_text("d/e/f.txt", "two\n", append=True) == 4
    assert await workspace.write_text("new.txt", "first", append=True) == 5
    assert await workspace.read_text("d/e/f.txt") == "one\ntwo\n"
    assert await workspace.read_text("new.txt") == "first"
    assert await workspace.read_bytes("./d/e/../e/f.txt") == b"one\ntwo\n"
    assert await workspace.write_text("d/e/f.txt", "replaced") == 8
    assert await workspace.read_text("d/e/f.txt") == "replaced"
    assert await workspace.write_bytes("bin.dat", b"\xff\x00\xfe") == 3
    assert await workspace.read_bytes("bin.dat") == b"\xff\x00\xfe"
    assert await code_of(workspace.read_text("bin.dat")) == "binary_file"


async def test_names_and_sizes_come_back_as_written(workspace: Workspace) -> None:
    big = bytes(range(256)) * (INLINE_IO_BYTES // 256 + 10)  # past the inline size
    await write_all(workspace, {"dossier/é t+%.txt": "café", "big.bin": big, "empty": ""})
    assert await workspace.read_text("dossier/é t+%.txt") == "café"
    assert await workspace.list_dir("dossier") == ["é t+%.txt"]
    assert await workspace.read_bytes("big.bin") == big
    assert (await workspace.info("big.bin")).size == len(big)
    assert await workspace.read_bytes("empty") == b""
    assert (await workspace.info("empty")).line_count == 0


async def test_listing_and_info(workspace: Workspace) -> None:
    await write_all(workspace, {"a.txt": "1\n2\n3", "sub/b.txt": "x", "sub/deep/c.txt": "y"})
    await workspace.mkdir("empty")
    assert await workspace.list_dir(".") == ["a.txt", "empty/", "sub/"]
    assert await workspace.list_dir("") == ["a.txt", "empty/", "sub/"]
    assert await workspace.list_dir("sub") == ["b.txt", "deep/"]
    assert await workspace.list_dir("sub/") == ["b.txt", "deep/"]
    assert await workspace.list_dir("empty") == []
    info = await workspace.info("a.txt")
    assert (info.path, info.is_dir, info.size, info.line_count) == ("a.txt", False, 5, 3)
    assert info.mtime > 0
    assert (await workspace.info("a.txt", count_lines=False)).line_count is None
    folder = await workspace.info("sub/")
    assert (folder.path, folder.is_dir, folder.size, folder.line_count) == ("sub", True, 0, None)
    assert (await workspace.info("empty")).is_dir
    root = await workspace.info(".")
    assert (root.path, root.is_dir) == (".", True)


async def test_exists(workspace: Workspace) -> None:
    await write_all(workspace, {"sub/b.txt": "x"})
    await workspace.mkdir("empty")
    for path in [".", "", "sub", "sub/", "sub/b.txt", "empty"]:
        assert await workspace.exists(path), path
    for path in ["nope", "sub/b", "sub/b.txt/x", "su"]:
        assert not await workspace.exists(path), path


async def test_an_empty_workspace(workspace: Workspace) -> None:
    assert await workspace.list_dir(".") == []
    assert await workspace.walk(".") == []
    assert (await workspace.info(".")).is_dir
    assert await workspace.exists(".")


async def test_mkdir(workspace: Workspace) -> None:
    await workspace.mkdir("a/b/c")
    await workspace.mkdir("a/b/c")  # an existing folder is fine
    await workspace.mkdir(".")
    assert await workspace.list_dir("a") == ["b/"]
    assert await workspace.list_dir("a/b/c") == []
    assert await workspace.walk("a") == []  # folders hold no files
    await workspace.write_text("a/b/c/f.txt", "x")
    await workspace.mkdir("a/b")
    assert await workspace.list_dir("a/b/c") == ["f.txt"]


async def test_walk_sorted_with_and_without_hidden(workspace: Workspace) -> None:
    paths = ["b.txt", "a/z.txt", "a/.hidden", ".git/config", "a/b/c.txt", "a.txt", "a/b.txt"]
    await write_all(workspace, dict.fromkeys(paths, "x"))
    # Segment by segment: a folder's files stay together (a/... before a.txt).
    assert await workspace.walk(".") == [
        ".git/config",
        "a/.hidden",
        "a/b/c.txt",
        "a/b.txt",
        "a/z.txt",
        "a.txt",
        "b.txt",
    ]
    assert await workspace.walk(".", include_hidden=False) == [
        "a/b/c.txt",
        "a/b.txt",
        "a/z.txt",
        "a.txt",
        "b.txt",
    ]
    assert await workspace.walk("a/b") == ["a/b/c.txt"]
    assert await workspace.walk("a/b/") == ["a/b/c.txt"]
    assert await workspace.walk("b.txt") == ["b.txt"]
    # The folder asked for may itself be hidden; only what is below it is filtered.
    assert await workspace.walk(".git", include_hidden=False) == [".git/config"]


async def test_a_prefix_is_not_a_folder(workspace: Workspace) -> None:
    """``src`` and ``src2`` share a string prefix, not a folder (as keys of a store do)."""
    await write_all(workspace, {"src/a.txt": "a", "src2/b.txt": "b", "srcfile": "c"})
    assert await workspace.walk("src") == ["src/a.txt"]
    assert await workspace.list_dir("src") == ["a.txt"]
    await workspace.delete("src", recursive=True)
    assert await workspace.walk(".") == ["src2/b.txt", "srcfile"]


async def test_delete(workspace: Workspace) -> None:
    await workspace.write_text("d/f.txt", "x")
    assert await code_of(workspace.delete("d")) == "not_empty"
    await workspace.delete("d/f.txt")
    assert await workspace.list_dir("d") == []  # the folder stays, as on disk
    assert await workspace.exists("d")
    await workspace.delete("d")  # an empty folder needs no recursive
    assert not await workspace.exists("d")
    await write_all(workspace, {"d/g.txt": "x", "d/e/h.txt": "y", "d/e/.i": "z", "keep.txt": ""})
    await workspace.mkdir("d/empty")
    await workspace.delete("d", recursive=True)
    assert not await workspace.exists("d") and not await workspace.exists("d/g.txt")
    assert await workspace.walk(".") == ["keep.txt"]
    assert await workspace.list_dir(".") == ["keep.txt"]
    await workspace.write_text("p/q/r.txt", "x")
    await workspace.delete("p/q", recursive=True)
    assert await workspace.list_dir("p") == []  # its parent stays


async def test_a_name_can_change_kind(workspace: Workspace) -> None:
    """A deleted folder's name can become a file's, and back (no trace of either stays)."""
    await workspace.write_text("d/f.txt", "x")
    await workspace.delete("d", recursive=True)
    await workspace.write_text("d", "now a file")
    assert await workspace.read_text("d") == "now a file"
    assert await workspace.list_dir(".") == ["d"]
    await workspace.delete("d")
    await workspace.mkdir("d")
    await workspace.write_text("d/g.txt", "a file again")
    assert await workspace.list_dir(".") == ["d/"]
    assert await workspace.walk(".") == ["d/g.txt"]


async def test_a_folder_with_only_an_empty_folder_is_not_empty(workspace: Workspace) -> None:
    await workspace.mkdir("d/e")
    assert await code_of(workspace.delete("d")) == "not_empty"
    await workspace.delete("d/e")
    await workspace.delete("d")
    assert await workspace.list_dir(".") == []


@pytest.mark.parametrize(
    ("operation", "path", "code"),
    [
        ("read_text", "missing.txt", "not_found"),
        ("read_bytes", "missing.txt", "not_found"),
        ("read_text", "folder", "is_directory"),
        ("read_bytes", ".", "is_directory"),
        ("write_text", "folder", "is_directory"),
        ("write_bytes", ".", "is_directory"),
        ("write_text", "file.txt/inner.txt", "not_a_directory"),
        ("write_bytes", "file.txt/deeper/inner.txt", "not_a_directory"),
        ("append", "folder", "is_directory"),
        ("list_dir", "file.txt", "not_a_directory"),
        ("list_dir", "missing", "not_found"),
        ("mkdir", "file.txt", "not_a_directory"),
        ("mkdir", "file.txt/sub", "not_a_directory"),
        ("info", "missing", "not_found"),
        ("info", "file.txt/inner", "not_found"),
        ("delete", "missing", "not_found"),
        ("delete", ".", "invalid_path"),
        ("walk", "missing", "not_found"),
    ],
)
async def test_errors_are_the_same_in_every_backend(
    workspace: Workspace, operation: str, path: str, code: str
) -> None:
    await workspace.write_text("file.txt", "x")
    await workspace.mkdir("folder")
    assert await code_of(OPERATIONS[operation](workspace, path)) == code
    assert await workspace.read_text("file.txt") == "x"  # a refusal changes nothing
    assert await workspace.list_dir(".") == ["file.txt", "folder/"]


async def test_deleting_a_folder_needs_recursive_even_when_deep(workspace: Workspace) -> None:
    await workspace.write_text("a/b/c/d.txt", "x")
    assert await code_of(workspace.delete("a", recursive=False)) == "not_empty"
    assert await workspace.walk(".") == ["a/b/c/d.txt"]


# ==== scoped views: one agent's folder ====================================================


async def test_a_scoped_view_is_a_folder_of_its_workspace(base: Workspace) -> None:
    view = base.scoped("agent-1")
    assert await view.list_dir(".") == []  # nothing written yet: an empty folder
    assert not await base.exists("agent-1")
    await view.write_text("notes/a.txt", "mine")
    assert await base.read_text("agent-1/notes/a.txt") == "mine"
    assert await view.walk(".") == ["notes/a.txt"]
    assert (await view.info("notes/a.txt")).path == "notes/a.txt"
    assert await base.scoped("agent-1/notes").read_text("a.txt") == "mine"
    assert await view.scoped("notes").read_text("a.txt") == "mine"


async def test_scoped_views_do_not_see_each_other(base: Workspace) -> None:
    mine, theirs = base.scoped("agent-1"), base.scoped("agent-2")
    await theirs.write_text("secret.txt", "theirs")
    await base.write_text("root.txt", "the root's")
    assert await code_of(mine.read_text("secret.txt")) == "not_found"
    assert await mine.list_dir(".") == []
    for path in ["../agent-2/secret.txt", "../root.txt", "a/../../agent-2/secret.txt"]:
        assert await code_of(mine.read_text(path)) == "path_escape", path
        assert await code_of(mine.write_text(path, "x")) == "path_escape", path
    assert await code_of(mine.delete(".", recursive=True)) == "invalid_path"
    assert await theirs.read_text("secret.txt") == "theirs"


@pytest.mark.parametrize(("folder", "code"), ESCAPES)
async def test_a_scope_outside_the_workspace_is_refused(
    base: Workspace, folder: str, code: str
) -> None:
    with pytest.raises(ToolError) as err:
        base.scoped(folder)
    assert err.value.code == code


# ==== the file tools, as the worker runs them ===============================================


@pytest.fixture
def tools(workspace: Workspace) -> ToolActivities:
    return ToolActivities(ToolRegistry(default_tools()), workspace)


async def run(
    tools: ToolActivities, name: str, **arguments: object
) -> tuple[ToolStatus, str, str | None]:
    request = ToolRequest(
        call=ToolCall(id="c", name=name, arguments=json.dumps(arguments)),
        idempotency_key="wf:c",
        large_result_chars=10**9,  # these tests read the tool's own output, never a stub
    )
    result = await ActivityEnvironment().run(tools.run_tool, request)
    return result.status, result.content, result.error_code


async def ok(tools: ToolActivities, name: str, **arguments: object) -> str:
    status, content, code = await run(tools, name, **arguments)
    assert (status, code) == (ToolStatus.SUCCESS, None), content
    return content


async def error(tools: ToolActivities, name: str, **arguments: object) -> tuple[str, str]:
    status, content, code = await run(tools, name, **arguments)
    assert status is ToolStatus.ERROR and code is not None, content
    return code, content


# --- every file tool refuses paths that leave the workspace ---------------------------

PATH_TOOLS = [
    ("_list_files", {}),
    ("_file_info", {}),
    ("_read_file", {}),
    ("_write_file", {"content": "x"}),
    ("_file_str_replace", {"old": "a", "new": "b"}),
    ("_workspace_grep", {"pattern": "x"}),
    ("_read_image", {}),
]


@pytest.mark.parametrize(("name", "extra"), PATH_TOOLS)
@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", "a/../../x", "~/x", "x\x00y"])
async def test_every_file_tool_refuses_escapes(
    tools: ToolActivities, name: str, extra: dict[str, object], path: str
) -> None:
    code, _ = await error(tools, name, path=path, **extra)
    assert code in ("path_escape", "invalid_path")


# --- _list_files ------------------------------------------------------------------------


async def test_list_files_hides_dotfiles_unless_asked(
    tools: ToolActivities, workspace: Workspace
) -> None:
    await workspace.write_text("b.txt", "")
    await workspace.write_text(".env", "")
    await workspace.write_text("sub/c.txt", "")
    assert await ok(tools, "_list_files") == "b.txt\nsub/"
    assert await ok(tools, "_list_files", include_hidden=True) == ".env\nb.txt\nsub/"
    assert await ok(tools, "_list_files", path="sub") == "c.txt"


async def test_list_files_with_a_glob(tools: ToolActivities, workspace: Workspace) -> None:
    paths = ["a.py", "src/b.py", "src/deep/c.py", "src/d.md", ".venv/e.py", "src/.f.py"]
    await write_all(workspace, dict.fromkeys(paths, ""))
    assert await ok(tools, "_list_files", glob="*.py") == "a.py\nsrc/b.py\nsrc/deep/c.py"
    assert await ok(tools, "_list_files", path="src", glob="*.{py,md}") == (
        "src/b.py\nsrc/d.md\nsrc/deep/c.py"
    )
    assert await ok(tools, "_list_files", glob="src/*.py") == "src/b.py"
    assert await ok(tools, "_list_files", glob="src/**/*.py") == "src/b.py\nsrc/deep/c.py"
    hidden = await ok(tools, "_list_files", glob="*.py", include_hidden=True)
    assert ".venv/e.py" in hidden and "src/.f.py" in hidden
    assert "no files match" in await ok(tools, "_list_files", glob="*.rs")


async def test_list_files_is_bounded(tools: ToolActivities, workspace: Workspace) -> None:
    await write_all(workspace, {f"many/f{i:04}.txt": "" for i in range(MAX_LIST_ENTRIES + 20)})
    lines = (await ok(tools, "_list_files", path="many")).splitlines()
    assert len(lines) == MAX_LIST_ENTRIES + 1
    assert lines[-1].startswith("[... 20 more entries left out")
    lines = (await ok(tools, "_list_files", glob="*.txt")).splitlines()
    assert len(lines) == MAX_LIST_ENTRIES + 1 and "20 more" in lines[-1]


async def test_list_files_of_an_empty_or_missing_folder(
    tools: ToolActivities, workspace: Workspace
) -> None:
    await workspace.mkdir("empty")
    assert await ok(tools, "_list_files", path="empty") == "(empty folder)"
    assert (await error(tools, "_list_files", path="nope"))[0] == "not_found"


# --- _file_info ----------------------------------------------------------------------------


async def test_file_info(tools: ToolActivities, workspace: Workspace) -> None:
    await workspace.write_text("d/a.txt", "1\n2\n")
    await workspace.write_bytes("d/b.bin", b"\x00\x01")
    text = await ok(tools, "_file_info", path="d/a.txt")
    assert "type: file" in text and "size: 4 bytes" in text and "lines: 2" in text
    assert "modified: " in text
    assert "lines: unknown" in await ok(tools, "_file_info", path="d/b.bin")
    folder = await ok(tools, "_file_info", path="d")
    assert "type: folder" in folder and "entries: 2" in folder
    assert (await error(tools, "_file_info", path="d/none"))[0] == "not_found"


# --- _read_file ----------------------------------------------------------------------------


async def test_read_file_ranges_and_line_numbers(
    tools: ToolActivities, workspace: Workspace
) -> None:
    await workspace.write_text("f.txt", "a\nb\nc\nd\n")
    assert await ok(tools, "_read_file", path="f.txt") == "a\nb\nc\nd"
    assert await ok(tools, "_read_file", path="f.txt", start_line=2, end_line=3) == "b\nc"
    assert await ok(tools, "_read_file", path="f.txt", start_line=3, end_line=99) == "c\nd"
    numbered = await ok(tools, "_read_file", path="f.txt", start_line=3, show_line_numbers=True)
    assert numbered == "     3\tc\n     4\td"


async def test_read_file_edge_cases(tools: ToolActivities, workspace: Workspace) -> None:
    await workspace.write_text("f.txt", "a\nb")
    await workspace.write_text("empty.txt", "")
    await workspace.write_bytes("bin", b"\x89PNG\r\n\x1a\n\x00")
    assert await ok(tools, "_read_file", path="empty.txt") == "(empty file)"
    code, message = await error(tools, "_read_file", path="f.txt", start_line=5)
    assert code == "out_of_range" and "has 2 lines" in message
    code, message = await error(tools, "_read_file", path="f.txt", start_line=2, end_line=1)
    assert code == "invalid_arguments" and "before start_line" in message
    assert (await error(tools, "_read_file", path="bin"))[0] == "binary_file"
    await workspace.mkdir("folder")
    assert (await error(tools, "_read_file", path="folder"))[0] == "is_directory"


async def test_reading_too_many_lines_suggests_a_range(
    tools: ToolActivities, workspace: Workspace
) -> None:
    await workspace.write_text("long.txt", "\n".join(str(i) for i in range(MAX_READ_LINES + 500)))
    code, message = await error(tools, "_read_file", path="long.txt")
    assert code == "too_large"
    assert f"start_line=1, end_line={MAX_READ_LINES}" in message
    code, message = await error(tools, "_read_file", path="long.txt", start_line=100)
    assert f"start_line=100, end_line={99 + MAX_READ_LINES}" in message
    # The suggested range is accepted as it stands.
    text = await ok(tools, "_read_file", path="long.txt", start_line=100, end_line=2099)
    assert len(text.splitlines()) == MAX_READ_LINES


async def test_reading_too_many_characters_suggests_a_range(
    tools: ToolActivities, workspace: Workspace
) -> None:
    line = "x" * 999  # 1,000 characters with its newline
    await workspace.write_text("wide.txt", "\n".join([line] * 200))
    code, message = await error(tools, "_read_file", path="wide.txt")
    fits = MAX_READ_CHARS // 1000
    assert code == "too_large" and f"start_line=1, end_line={fits}" in message
    assert len(await ok(tools, "_read_file", path="wide.txt", end_line=fits)) <= MAX_READ_CHARS
    await workspace.write_text("one.txt", "y" * (MAX_READ_CHARS + 1))
    code, message = await error(tools, "_read_file", path="one.txt")
    assert "line 1 alone" in message and "_workspace_grep" in message


# --- _write_file -----------------------------------------------------------------------------


async def test_write_and_append(tools: ToolActivities, workspace: Workspace) -> None:
    assert await ok(tools, "_write_file", path="n/a.md", content="é") == "wrote 2 bytes to n/a.md"
    assert "appended" in await ok(tools, "_write_file", path="n/a.md", content="!", append=True)
    assert await workspace.read_text("n/a.md") == "é!"
    await workspace.mkdir("dir")
    assert (await error(tools, "_write_file", path="dir", content="x"))[0] == "is_directory"


# --- _file_str_replace -----------------------------------------------------------------------


async def test_str_replace_once(tools: ToolActivities, workspace: Workspace) -> None:
    await workspace.write_text("c.py", "def f():\n    return 1\n")
    text = await ok(tools, "_file_str_replace", path="c.py", old="return 1", new="return 2")
    assert text == "replaced 1 occurrence in c.py"
    assert await workspace.read_text("c.py") == "def f():\n    return 2\n"


async def test_str_replace_missing_text(tools: ToolActivities, workspace: Workspace) -> None:
    await workspace.write_text("c.py", "x = 1\n")
    code, message = await error(tools, "_file_str_replace", path="c.py", old="y = 1", new="z")
    assert code == "not_found" and "exactly" in message
    assert await workspace.read_text("c.py") == "x = 1\n"


async def test_str_replace_ambiguous_then_all(tools: ToolActivities, workspace: Workspace) -> None:
    await workspace.write_text("c.txt", "a b a b a")
    code, message = await error(tools, "_file_str_replace", path="c.txt", old="a", new="A")
    assert code == "ambiguous" and "3 times" in message and "replace_all" in message
    assert await workspace.read_text("c.txt") == "a b a b a"
    text = await ok(tools, "_file_str_replace", path="c.txt", old="a", new="A", replace_all=True)
    assert text == "replaced 3 occurrences in c.txt"
    assert await workspace.read_text("c.txt") == "A b A b A"


async def test_str_replace_argument_checks(tools: ToolActivities, workspace: Workspace) -> None:
    await workspace.write_text("c.txt", "a")
    for old, new in [("", "b"), ("a", "a")]:
        code, _ = await error(tools, "_file_str_replace", path="c.txt", old=old, new=new)
        assert code == "invalid_arguments"
    assert (await error(tools, "_file_str_replace", path="no.txt", old="a", new="b"))[0] == (
        "not_found"
    )


# --- _workspace_grep --------------------------------------------------------------------------


async def test_grep_matches_with_line_numbers(tools: ToolActivities, workspace: Workspace) -> None:
    await workspace.write_text("src/a.py", "import os\nx = 1\nimport re\n")
    await workspace.write_text("src/b.md", "import nothing\n")
    await workspace.write_text(".git/c.py", "import hidden\n")
    assert await ok(tools, "_workspace_grep", pattern=r"^import \w+$", glob="*.py") == (
        "src/a.py:1:import os\nsrc/a.py:3:import re"
    )
    everything = await ok(tools, "_workspace_grep", pattern="import")
    assert "src/b.md:1:import nothing" in everything and ".git" not in everything
    assert ".git/c.py:1:" in await ok(
        tools, "_workspace_grep", pattern="import", include_hidden=True
    )
    assert await ok(tools, "_workspace_grep", pattern="X = 1", case_sensitive=False) == (
        "src/a.py:2:x = 1"
    )
    assert await ok(tools, "_workspace_grep", pattern="re", path="src/a.py") == (
        "src/a.py:3:import re"
    )


async def test_grep_context_lines(tools: ToolActivities, workspace: Workspace) -> None:
    await workspace.write_text("f.txt", "\n".join(f"line {i}" for i in range(1, 11)))
    text = await ok(tools, "_workspace_grep", pattern="line (3|5|9)$", context_lines=1)
    assert text.splitlines() == [
        "f.txt-2-line 2",
        "f.txt:3:line 3",
        "f.txt-4-line 4",
        "f.txt:5:line 5",
        "f.txt-6-line 6",
        "--",
        "f.txt-8-line 8",
        "f.txt:9:line 9",
        "f.txt-10-line 10",
    ]


async def test_grep_is_bounded(tools: ToolActivities, workspace: Workspace) -> None:
    await workspace.write_text("many.txt", "hit\n" * 30)
    await workspace.write_text("wide.txt", "hit" + "x" * 2000)
    text = await ok(tools, "_workspace_grep", pattern="hit", max_results=10)
    lines = text.splitlines()
    assert len(lines) == 11
    assert lines[-1].startswith("[showing 10 of 31 matching lines")
    wide = await ok(tools, "_workspace_grep", pattern="hit", path="wide.txt")
    assert len(wide) < MAX_LINE_CHARS + 100 and "more characters]" in wide


async def test_grep_skips_binary_files(tools: ToolActivities, workspace: Workspace) -> None:
    await workspace.write_bytes("blob.bin", b"needle\x00\x01")
    await workspace.write_bytes("latin1.txt", "needle caf\xe9".encode("latin-1"))
    await workspace.write_text("t.txt", "needle")
    text = await ok(tools, "_workspace_grep", pattern="needle")
    assert text.splitlines() == ["t.txt:1:needle", "[skipped 2 binary files]"]


async def test_grep_without_matches_and_with_a_bad_regex(
    tools: ToolActivities, workspace: Workspace
) -> None:
    await workspace.write_text("t.txt", "hay")
    assert (await ok(tools, "_workspace_grep", pattern="needle")).startswith("no matches")
    code, message = await error(tools, "_workspace_grep", pattern="(unclosed")
    assert code == "invalid_regex" and "missing )" in message
    code, _ = await error(tools, "_workspace_grep", pattern="x", max_results=0)
    assert code == "invalid_arguments"


async def test_grep_over_many_files_keeps_their_order(
    tools: ToolActivities, workspace: Workspace
) -> None:
    count = LOOKUP_BATCH * 2 + 5  # several batches, the last one short
    files: dict[str, str | bytes] = {
        f"src/m{i:03}.py": f"x = {i}\nneedle {i}\n" for i in range(count)
    }
    files["src/big.log"] = "needle\n" * (MAX_FILE_BYTES // 7 + 1)
    files["src/blob.bin"] = b"needle\x00"
    await write_all(workspace, files)
    lines = (await ok(tools, "_workspace_grep", pattern="needle", max_results=1000)).splitlines()
    assert lines == [
        *(f"src/m{i:03}.py:2:needle {i}" for i in range(count)),
        "[skipped 1 binary file and 1 large file]",
    ]


def test_grep_reads_in_groups_bounded_by_size() -> None:
    full, huge = MAX_FILE_BYTES, MAX_FILE_BYTES + 1  # the largest searched; one skipped
    per_group = FETCH_BYTES // full
    sizes = [*[full] * per_group, huge, full, 10]
    files = [f"f{i}" for i in range(len(sizes))]
    groups = _groups_by_size(files, sizes)
    # A skipped file costs nothing; a file that would overflow a group starts the next.
    assert [len(g) for g in groups] == [per_group + 1, 2]
    assert [f for g in groups for f, _ in g] == files  # in order
    assert _groups_by_size([], []) == []
