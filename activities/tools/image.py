"""``_read_image``: let the model look at an image from the workspace.

A tool result is text, and history should not carry megabytes of base64. So the tool
copies the image to a content-addressed artifact in the workspace,
``.duragent/artifacts/<sha256>.<ext>``, and answers with a short text that ends in a
reference line::

    image charts/q3.png (image/png, 48,213 bytes) attached
    image-ref: .duragent/artifacts/9f86d0....png

The LLM activity expands each ``image-ref:`` line of a tool message into an
``image_url`` content part (a ``data:`` URL built with :func:`image_data_url`) when it
builds the request; :func:`image_refs` finds them. The artifact is named by its
content, so the transcript keeps pointing at the same pixels even when the original
file is later changed or deleted.

Images are recognised by their magic bytes (PNG, JPEG, GIF, WebP), not by their
extension. URLs are refused with ``unsupported``: tools do not reach the network, and
an image the model should see is downloaded into the workspace first.
"""

from __future__ import annotations

import base64
import hashlib
import re

from pydantic import BaseModel, Field

from duragent.activities.errors import ToolError
from duragent.activities.tools.registry import ToolContext, tool
from duragent.activities.tools.workspace import Workspace

MAX_IMAGE_BYTES = 5_000_000
"""Larger images are refused: providers reject them, and they cost many tokens."""
ARTIFACTS_FOLDER = ".duragent/artifacts"
"""Where images are copied, named by their SHA-256."""
IMAGE_REF_PREFIX = "image-ref: "
"""Start of the line that points at an image artifact in a tool result."""

_IMAGE_REF = re.compile(r"^image-ref: (\S+)$", re.MULTILINE)
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://|^data:")


class ReadImageArgs(BaseModel):
    """Arguments of ``_read_image``."""

    path: str = Field(description="Image file path relative to the workspace root.")


def sniff_image(data: bytes) -> tuple[str, str] | None:
    """The MIME type and extension of PNG, JPEG, GIF or WebP data, from its magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", "jpg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif", "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    return None


@tool(name="_read_image")
async def read_image(args: ReadImageArgs, ctx: ToolContext) -> str:
    """Look at an image from the workspace (PNG, JPEG, GIF or WebP, up to 5 MB)."""
    if _URL.match(args.path.strip()):
        raise ToolError(
            "images are read from the workspace only, not from URLs; download it into the "
            "workspace first (e.g. with _bash and curl), then read that file",
            code="unsupported",
        )
    workspace = ctx.workspace
    info = await workspace.info(args.path, count_lines=False)
    if info.is_dir:
        raise ToolError(f"{args.path!r} is a folder, not an image", code="is_directory")
    if info.size > MAX_IMAGE_BYTES:
        raise ToolError(
            f"{args.path} is {info.size:,} bytes; images up to {MAX_IMAGE_BYTES:,} bytes can "
            "be read. Make it smaller first (e.g. with _bash: convert -resize 50%).",
            code="too_large",
        )
    data = await workspace.read_bytes(args.path)
    kind = sniff_image(data)
    if kind is None:
        raise ToolError(
            f"{args.path} is not a PNG, JPEG, GIF or WebP image; use _read_file for text",
            code="not_an_image",
        )
    mime, extension = kind
    ref = await store_image(workspace, data, extension)
    return f"image {info.path} ({mime}, {len(data):,} bytes) attached\n{IMAGE_REF_PREFIX}{ref}"


def image_refs(content: str) -> list[str]:
    """The artifact paths referenced by ``image-ref:`` lines of a tool result."""
    return _IMAGE_REF.findall(content)


async def image_data_url(workspace: Workspace, ref: str) -> str:
    """A ``data:`` URL for a referenced image, for an ``image_url`` content part.

    Raises:
        ToolError: The reference does not lead to an image in the workspace.
    """
    data = await workspace.read_bytes(ref)
    kind = sniff_image(data)
    if kind is None:
        raise ToolError(f"{ref} is not an image", code="not_an_image")
    return f"data:{kind[0]};base64,{base64.b64encode(data).decode('ascii')}"


async def store_image(workspace: Workspace, data: bytes, extension: str) -> str:
    """Copy an image to its content-addressed artifact; returns the ``image-ref`` path."""
    ref = f"{ARTIFACTS_FOLDER}/{hashlib.sha256(data).hexdigest()}.{extension}"
    if not await workspace.exists(ref):  # same name, same bytes: written once
        await workspace.write_bytes(ref, data)
    return ref
