"""``@tool`` on plain typed functions: the schema from the signature, the call adapted."""

from __future__ import annotations

import json
import threading

import pytest
from pydantic import BaseModel

from duragent.activities.errors import ToolError
from duragent.activities.tools import MemoryWorkspace, ToolContext, ToolOutput, parse_arguments
from duragent.activities.tools.registry import tool


def _context() -> ToolContext:
    return ToolContext(workspace=MemoryWorkspace(), call_id="c1", idempotency_key="wf:c1")


@tool
async def add(a: int, b: int = 2) -> int:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second one,
            two unless given.
    """
    return a + b


class City(BaseModel):
    name: str
    country: str = "FR"


@tool(max_attempts=1)
def lookup(city: City, ctx: ToolContext, units: str = "metric") -> City:
    """Look a city up (runs in a thread: it is not async)."""
    assert threading.current_thread() is not threading.main_thread()
    return City(name=city.name.upper(), country=f"{city.country}/{ctx.call_id}/{units}")


def test_the_schema_comes_from_the_signature_and_the_docstring() -> None:
    schema = add.openai_schema()["function"]
    assert schema["name"] == "add"
    assert schema["description"] == "Add two numbers."
    params = schema["parameters"]
    assert params["required"] == ["a"]
    assert params["properties"]["a"]["description"] == "The first number."
    assert params["properties"]["b"]["description"] == "The second one, two unless given."
    assert params["additionalProperties"] is False


def test_the_context_parameter_is_not_offered_to_the_model() -> None:
    params = lookup.openai_schema()["function"]["parameters"]
    assert set(params["properties"]) == {"city", "units"}
    assert lookup.max_attempts == 1


async def test_a_plain_function_is_called_with_its_arguments() -> None:
    assert add.function is not None
    args = parse_arguments("add", add.args_model, '{"a": 40}')
    assert await add.function(args, _context()) == "42"  # any non-text result as JSON


async def test_a_blocking_function_runs_in_a_thread_with_nested_models() -> None:
    assert lookup.function is not None
    args = parse_arguments("lookup", lookup.args_model, '{"city": {"name": "lyon"}}')
    out = json.loads(str(await lookup.function(args, _context())))
    assert out == {"name": "LYON", "country": "FR/c1/metric"}


def test_unknown_arguments_go_back_to_the_model() -> None:
    with pytest.raises(ToolError, match="c: Extra inputs are not permitted"):
        parse_arguments("add", add.args_model, '{"a": 1, "c": 3}')


async def test_text_and_tool_output_are_returned_as_they_are() -> None:
    @tool
    async def running() -> ToolOutput:
        """Start something."""
        return ToolOutput("started")

    assert running.function is not None
    out = await running.function(running.args_model(), _context())
    assert out == ToolOutput("started")


def test_star_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match=r"\*args and \*\*kwargs"):

        @tool
        async def bad(*names: str) -> str:
            return ",".join(names)
