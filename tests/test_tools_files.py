"""File tools run as the worker runs them: ``run_tool`` in an ActivityEnvironment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.models import ToolCall, ToolRequest, ToolStatus
from activities.tools import (
    LocalWorkspace,
    MemoryWorkspace,
    ToolRegistry,
    Workspace,
    default_tools,
)
from activities.tools.activity import ToolActivities
from activities.tools.files import MAX_LIST_ENTRIES, MAX_READ_CHARS, MAX_READ_LINES
from activities.tools.search import MAX_LINE_CHARS


@pytest.fixture(params=["local", "memory"])
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Workspace:
    return LocalWorkspace(tmp_path) if request.param == "local" else MemoryWorkspace()


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
@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../x", "~/x", "x\x00y"])
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
    for path in ["a.py", "src/b.py", "src/deep/c.py", "src/d.md", ".venv/e.py", "src/.f.py"]:
        await workspace.write_text(path, "")
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
    for i in range(MAX_LIST_ENTRIES + 20):
        await workspace.write_text(f"many/f{i:04}.txt", "")
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
