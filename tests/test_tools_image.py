"""``_read_image``: images by magic bytes, a content-addressed artifact, clear refusals."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from duragent.activities.models import ToolCall, ToolRequest, ToolResult, ToolStatus
from duragent.activities.tools import (
    LocalWorkspace,
    MemoryWorkspace,
    ToolRegistry,
    Workspace,
    default_tools,
    image_data_url,
    image_refs,
)
from duragent.activities.tools.activity import ToolActivities
from duragent.activities.tools.image import MAX_IMAGE_BYTES, sniff_image


def tiny_png() -> bytes:
    """A valid 1x1 red PNG, written by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")  # filter byte, then one red pixel
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.fixture(params=["local", "memory"])
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Workspace:
    return LocalWorkspace(tmp_path) if request.param == "local" else MemoryWorkspace()


@pytest.fixture
def tools(workspace: Workspace) -> ToolActivities:
    return ToolActivities(ToolRegistry(default_tools()), workspace)


async def read_image(tools: ToolActivities, path: str) -> ToolResult:
    call = ToolCall(id="c", name="_read_image", arguments=json.dumps({"path": path}))
    return await ActivityEnvironment().run(
        tools.run_tool, ToolRequest(call=call, idempotency_key="wf:c")
    )


async def test_a_png_is_attached_as_a_content_addressed_artifact(
    tools: ToolActivities, workspace: Workspace
) -> None:
    png = tiny_png()
    await workspace.write_bytes("pics/dot.png", png)
    result = await read_image(tools, "pics/dot.png")
    assert result.status is ToolStatus.SUCCESS
    first_line = result.content.splitlines()[0]
    assert first_line == f"image pics/dot.png (image/png, {len(png)} bytes) attached"
    [ref] = image_refs(result.content)
    assert ref.startswith(".duragent/artifacts/") and ref.endswith(".png")
    assert await workspace.read_bytes(ref) == png
    assert await image_data_url(workspace, ref) == (
        "data:image/png;base64," + base64.b64encode(png).decode()
    )
    # The same pixels under another name: the same artifact.
    await workspace.write_bytes("copy.png", png)
    assert image_refs((await read_image(tools, "copy.png")).content) == [ref]


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"\xff\xd8\xff\xe0" + b"\x00" * 16, "image/jpeg"),
        (b"GIF89a" + b"\x00" * 16, "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 8, "image/webp"),
    ],
)
async def test_other_formats_by_magic_bytes(
    tools: ToolActivities, workspace: Workspace, data: bytes, mime: str
) -> None:
    await workspace.write_bytes("image.bin", data)  # the extension does not matter
    result = await read_image(tools, "image.bin")
    assert f"({mime}, " in result.content


@pytest.mark.parametrize(
    ("setup", "path", "code"),
    [
        ({"notes.txt": b"just text"}, "notes.txt", "not_an_image"),
        ({"fake.png": b"PNG but not really"}, "fake.png", "not_an_image"),
        ({}, "missing.png", "not_found"),
        ({"dir/a.txt": b""}, "dir", "is_directory"),
        ({}, "https://example.com/cat.png", "unsupported"),
        ({}, "data:image/png;base64,AAAA", "unsupported"),
        ({}, "../outside.png", "path_escape"),
    ],
)
async def test_refusals(
    tools: ToolActivities,
    workspace: Workspace,
    setup: dict[str, bytes],
    path: str,
    code: str,
) -> None:
    for name, data in setup.items():
        await workspace.write_bytes(name, data)
    result = await read_image(tools, path)
    assert (result.status, result.error_code) == (ToolStatus.ERROR, code)


async def test_a_too_large_image_is_refused(tools: ToolActivities, workspace: Workspace) -> None:
    await workspace.write_bytes("huge.png", tiny_png() + b"\x00" * MAX_IMAGE_BYTES)
    result = await read_image(tools, "huge.png")
    assert (result.status, result.error_code) == (ToolStatus.ERROR, "too_large")
    assert "5,000,000" in result.content
    assert not await workspace.exists(".duragent")


def test_sniffing() -> None:
    assert sniff_image(tiny_png()) == ("image/png", "png")
    assert sniff_image(b"") is None
    assert sniff_image(b"RIFF\x00\x00\x00\x00WAVE") is None
