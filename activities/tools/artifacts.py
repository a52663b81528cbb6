"""Large tool outputs live in the workspace, not in history.

A result longer than the run's limit is written to ``.duragent/artifacts/<sha256>.txt``
(named by its content, so retries and replays write the same file) and history keeps a
stub: the path, the head and the tail, and a hint to read the rest back. The LLM
activity gives the model the full text while the result is recent; compaction later
leaves only the stub in the prompt.
"""

from __future__ import annotations

import hashlib

from duragent.activities.tools.image import ARTIFACTS_FOLDER
from duragent.activities.tools.workspace import Workspace

HEAD_CHARS = 1_500
TAIL_CHARS = 500


async def offload(workspace: Workspace, text: str) -> tuple[str, str]:
    """Write ``text`` to a content-addressed artifact; returns ``(path, stub)``."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    path = f"{ARTIFACTS_FOLDER}/{digest}.txt"
    if not await workspace.exists(path):
        await workspace.write_text(path, text)
    return path, stub(path, text)


def stub(path: str, text: str) -> str:
    """The short stand-in for a large output: where it is, how it starts and ends."""
    head, tail = text[:HEAD_CHARS], text[-TAIL_CHARS:]
    return (
        f"[{len(text):,} characters; the full output is in {path}. Read parts of it with "
        f"_read_file (start_line/end_line) or search it with _workspace_grep.]\n"
        f"--- head ---\n{head}\n--- tail ---\n{tail}"
    )
