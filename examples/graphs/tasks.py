"""Two graph tasks, for ``duragent worker --load examples.graphs.tasks``.

A task is a plain function with JSON arguments and a JSON result, marked with
``@task``; a graph's task node names it by ref (``examples.graphs.tasks:slugify``)
and passes its arguments as templates over the graph's state (see ``headline.yaml``).
A sync function runs in a thread of the worker, an async one on its event loop.
"""

from __future__ import annotations

import re
import unicodedata

from duragent.activities.tasks import TaskError, task


@task
def word_count(text: str) -> dict[str, int]:
    """Words, lines and characters of a text."""
    return {"words": len(text.split()), "lines": len(text.splitlines()), "chars": len(text)}


@task
def slugify(title: str, max_length: int = 60) -> str:
    """A URL slug of a title: lower-case ASCII words joined by hyphens.

    Raises:
        TaskError: The title has no letters or digits (retrying would not change that).
    """
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    if not slug:
        raise TaskError(f"no letters or digits in the title {title!r}")
    return slug[:max_length].rstrip("-")
