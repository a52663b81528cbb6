"""The engine's per-call savings keep its behaviour: cached tool schemas, a raw body."""

from __future__ import annotations

from activities.tools import ToolRegistry, default_tools


def test_tool_schemas_are_built_once_per_worker() -> None:
    registry = ToolRegistry(default_tools())
    names = ["_read_file", "_task_finish", "no_such_tool"]
    first = registry.schemas(names)
    again = registry.schemas(iter(names))  # any iterable of the same names
    assert [t["function"]["name"] for t in first] == ["_read_file", "_task_finish"]
    assert all(a is b for a, b in zip(first, again, strict=True))
    other = registry.schemas(["_task_finish"])
    assert other[0] is first[1]  # one entry per tool, whatever list it is in


def test_a_changed_schema_list_does_not_change_the_next_one() -> None:
    registry = ToolRegistry(default_tools())
    first = registry.schemas(["_read_file"])
    first.clear()
    assert [t["function"]["name"] for t in registry.schemas(["_read_file"])] == ["_read_file"]
