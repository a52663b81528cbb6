"""The tasks ``bench.graph_cost`` runs (``--load bench.graph_tasks``): as cheap as a node gets."""

from __future__ import annotations

from duragent.activities.tasks import task


@task
def square(n: int) -> int:
    """A map item's work."""
    return n * n


@task
def bump(count: int) -> int:
    """A loop visit's work: the next count."""
    return count + 1
