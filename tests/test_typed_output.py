"""An agent that must finish with a typed result (``AgentInput.output_schema``).

Pure checks of the validation and of the tool entry the model sees, then runs on the
real dev server with the scripted LLM over real HTTP.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, JsonValue
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from duragent.activities.errors import ToolError
from duragent.activities.models import ToolCall
from duragent.activities.tools.control import (
    TASK_FINISH,
    TaskFinishArgs,
    TypedTaskFinishArgs,
    control_tools,
    typed_finish_tool,
)
from duragent.activities.tools.registry import MAX_ARGUMENT_DEPTH, parse_arguments
from duragent.workflows import json_schema, policy
from duragent.workflows.agent import AgentWorkflow
from duragent.workflows.models import AgentStatus
from tests.conftest import Harness
from tests.replay import replay
from tests.test_agent import call, finish, start, tool_messages

REPORT: dict[str, JsonValue] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "count": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["title", "count"],
    "additionalProperties": False,
}
GOOD: dict[str, JsonValue] = {"title": "Quarterly report", "count": 3, "tags": ["q3"]}


def finish_call(arguments: dict[str, Any]) -> ToolCall:
    return ToolCall(id="call_1", name=TASK_FINISH, arguments=json.dumps(arguments))


def finish_tool(body: dict[str, Any]) -> dict[str, Any]:
    """The ``_task_finish`` entry of an LLM request's tools."""
    [entry] = [t for t in body["tools"] if t["function"]["name"] == TASK_FINISH]
    return entry["function"]  # type: ignore[no-any-return]


# --- validation, pure ----------------------------------------------------------------


def test_errors_name_their_json_paths_in_the_validators_order() -> None:
    bad: dict[str, JsonValue] = {"title": 7, "count": -1, "tags": ["a", 2], "extra": True}
    shown, count = json_schema.errors(bad, REPORT)
    assert count == 4
    assert shown == [
        "at $.title: 7 is not of type 'string'",
        "at $.count: -1 is less than the minimum of 0",
        "at $.tags[1]: 2 is not of type 'string'",
        "at $: Additional properties are not allowed ('extra' was unexpected)",
    ]
    assert json_schema.errors(GOOD, REPORT) == ([], 0)


def test_errors_are_few_and_short() -> None:
    schema: dict[str, JsonValue] = {"type": "array", "items": {"type": "integer"}}
    shown, count = json_schema.errors(["x" * 5_000] * 9, schema)
    assert count == 9
    assert len(shown) == json_schema.MAX_SHOWN_ERRORS
    assert all(len(line) <= json_schema.MAX_ERROR_CHARS + 20 for line in shown)


def test_a_value_too_deep_is_refused_before_the_validator_recurses() -> None:
    recursive: dict[str, JsonValue] = {"type": "array", "items": {"$ref": "#"}}
    deep: JsonValue = []
    for _ in range(json_schema.MAX_DEPTH + 5):
        deep = [deep]
    too_deep = f"at $: the value nests more than {json_schema.MAX_DEPTH} levels deep"
    assert json_schema.errors(deep, recursive) == ([too_deep], 1)


def test_check_output_teaches_the_paths_and_the_schema() -> None:
    args = parse_arguments(
        TASK_FINISH, TypedTaskFinishArgs, json.dumps({"message": "m", "output": {"title": 1}})
    )
    with pytest.raises(ToolError) as caught:
        policy.check_output(args, REPORT)
    assert caught.value.code == "invalid_output"
    message = str(caught.value)
    assert message.startswith("the output does not match its schema (2 errors):\n")
    assert "- at $.title: 1 is not of type 'string'\n" in message
    assert "- at $: 'count' is a required property\n" in message
    assert message.endswith(json.dumps(REPORT, separators=(",", ":")))


def test_check_output_asks_for_a_missing_output() -> None:
    args = parse_arguments(TASK_FINISH, TypedTaskFinishArgs, json.dumps({"message": "m"}))
    with pytest.raises(ToolError, match="_task_finish needs `output`") as caught:
        policy.check_output(args, REPORT)
    assert caught.value.code == "invalid_output"
    assert json.dumps(REPORT, separators=(",", ":")) in str(caught.value)
    # null is an output, and this schema refuses it.
    args = parse_arguments(TASK_FINISH, TypedTaskFinishArgs, '{"message": "m", "output": null}')
    with pytest.raises(ToolError, match=r"at \$: None is not of type 'object'"):
        policy.check_output(args, REPORT)


def test_interpret_finishes_only_with_a_valid_output() -> None:
    bad = finish_call({"message": "m", "output": {"title": "t"}})
    outcome = policy.interpret_control_calls([bad], [], output_schema=REPORT)
    assert outcome.finish is None
    assert outcome.results["call_1"].error_code == "invalid_output"
    assert policy.decide([bad], outcome).kind is policy.DirectiveKind.CONTINUE

    good = finish_call({"message": "m", "output": GOOD})
    outcome = policy.interpret_control_calls([good], [], output_schema=REPORT)
    directive = policy.decide([good], outcome)
    assert (directive.kind, directive.answer, directive.output) == (
        policy.DirectiveKind.FINISH,
        "m",
        GOOD,
    )


def test_without_a_schema_an_output_is_ignored() -> None:
    sent = finish_call({"message": "m", "output": {"anything": 1}})
    outcome = policy.interpret_control_calls([sent], [])
    assert type(outcome.finish) is TaskFinishArgs
    assert policy.decide([sent], outcome).output is None


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ({"type": "objekt"}, "not a valid JSON Schema (Draft 2020-12): at $.type"),
        ({"pattern": "("}, "at $.pattern: '(' is not a 'regex'"),
        ({"$ref": "https://example.com/s.json"}, "cannot be resolved"),
        ({"$ref": "#/$defs/Missing"}, "'#/$defs/Missing' cannot be resolved"),
        ({"enum": ["x" * 20_000]}, "over the limit of 16,384"),
    ],
)
def test_a_schema_that_cannot_be_used_is_named(schema: dict[str, JsonValue], why: str) -> None:
    problem = policy.output_schema_problem(schema, [TASK_FINISH])
    assert problem is not None and problem.startswith("output_schema: ")
    assert why in problem


def test_usable_schemas_pass() -> None:
    nested: dict[str, JsonValue] = {
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
        "properties": {
            "root": {"$ref": "#/$defs/Node"},
            "meta": {"$ref": "https://json-schema.org/draft/2020-12/schema"},
            "sub": {"$id": "https://example.com/sub", "$defs": {"s": {}}, "$ref": "#/$defs/s"},
        },
    }
    assert policy.output_schema_problem(nested, [TASK_FINISH]) is None
    assert policy.output_schema_problem(REPORT, ["_list_files"]) == (
        "output_schema: the agent must have _task_finish to return its output"
    )
    assert policy.output_schema_problem(None, []) is None


def test_arguments_nested_too_deeply_are_refused_not_recursed() -> None:
    deep = "[" * 5_000 + "]" * 5_000
    with pytest.raises(ToolError, match="nest 5001 levels deep, more than 128") as caught:
        parse_arguments(TASK_FINISH, TypedTaskFinishArgs, f'{{"message": "m", "output": {deep}}}')
    assert caught.value.code == "invalid_arguments"
    brackets_in_text = json.dumps({"message": "[" * (MAX_ARGUMENT_DEPTH * 2)})
    assert parse_arguments(TASK_FINISH, TaskFinishArgs, brackets_in_text).message.startswith("[")


# --- the tool entry the model sees ---------------------------------------------------


def test_the_typed_finish_entry_requires_the_output_and_leaves_the_shared_one_alone() -> None:
    class Item(BaseModel):
        name: str

    class Basket(BaseModel):
        items: list[Item]

    entry = next(t for t in control_tools() if t.name == TASK_FINISH).openai_schema()
    before = json.dumps(entry)
    typed = typed_finish_tool(entry, Basket.model_json_schema())
    assert json.dumps(entry) == before
    parameters = typed["function"]["parameters"]
    assert parameters["required"] == ["message", "output"]
    assert parameters["properties"]["output"]["properties"]["items"]["items"] == {
        "$ref": "#/$defs/Item"
    }
    assert parameters["$defs"]["Item"]["properties"]["name"] == {"title": "Name", "type": "string"}
    assert "`output`" in typed["function"]["description"]
    # References to the schema's own root follow it to where it now sits.
    linked = typed_finish_tool(entry, {"type": "array", "items": {"$ref": "#"}})
    assert linked["function"]["parameters"]["properties"]["output"]["items"] == {
        "$ref": "#/properties/output"
    }


# --- runs on the dev server ----------------------------------------------------------


async def test_an_invalid_output_goes_back_to_the_model_then_a_valid_one_completes(
    harness: Harness,
) -> None:
    wrong = {"title": "Quarterly report", "count": "three"}
    task = harness.script([finish("first try", output=wrong), finish("done", output=GOOD)])
    async with harness.worker():
        handle = await start(harness, task, output_schema=REPORT)
        result = await handle.result()
        view = await handle.query(AgentWorkflow.status)

    assert result.status is AgentStatus.COMPLETED
    assert (result.answer, result.output, result.cycles) == ("done", GOOD, 2)
    assert view.output == GOOD
    first, second = (r.body for r in harness.requests())
    # Every call offered the schema as the required output of _task_finish.
    for body in (first, second):
        parameters = finish_tool(body)["parameters"]
        assert parameters["properties"]["output"] == REPORT
        assert "output" in parameters["required"]
    [seen] = tool_messages(second)
    assert seen.startswith(
        "ERROR (invalid_output): the output does not match its schema (1 error):\n"
        "- at $.count: 'three' is not of type 'integer'\n"
    )
    assert json.dumps(REPORT, separators=(",", ":")) in seen
    # The run replays: the check gives the same answer in workflow code every time.
    replayed = await replay(await handle.fetch_history())
    assert replayed.replay_failure is None, replayed.replay_failure


async def test_a_missing_output_is_asked_for_then_a_valid_one_completes(harness: Harness) -> None:
    task = harness.script([finish("no output"), finish("done", output=GOOD)])
    async with harness.worker():
        result = await (await start(harness, task, output_schema=REPORT)).result()

    assert (result.status, result.output) == (AgentStatus.COMPLETED, GOOD)
    [seen] = tool_messages(harness.requests()[-1].body)
    assert seen.startswith("ERROR (invalid_output): _task_finish needs `output`")


async def test_without_a_schema_finish_is_as_before(harness: Harness) -> None:
    task = harness.script([finish("plain answer", output={"ignored": True})])
    async with harness.worker():
        result = await (await start(harness, task)).result()

    assert (result.status, result.answer, result.output) == (
        AgentStatus.COMPLETED,
        "plain answer",
        None,
    )
    [request] = harness.requests()
    parameters = finish_tool(request.body)["parameters"]
    assert "output" not in parameters["properties"]
    assert parameters["required"] == ["message"]


async def test_a_schema_that_cannot_be_used_fails_the_run_at_its_start(harness: Harness) -> None:
    task = harness.script([{"tool_calls": [call("_list_files")]}])
    async with harness.worker():
        handle = await start(harness, task, output_schema={"type": "objekt"})
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()

    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidOutputSchema"
    assert "output_schema: not a valid JSON Schema" in cause.message
    assert harness.requests() == []  # no LLM call was made
