"""Typed output: an agent's ``output_schema``, checked at start and at every finish.

Pure and deterministic, like all of :mod:`workflows.policy` (which re-exports them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from pydantic import JsonValue

from duragent.activities import limits
from duragent.activities.errors import ToolError
from duragent.activities.tools.control import TASK_FINISH, TypedTaskFinishArgs
from duragent.workflows import json_schema

MAX_OUTPUT_SCHEMA_BYTES = 16 * limits.KIB
"""An agent's output schema, as compact JSON: it rides in every LLM call's input."""
SCHEMA_IN_ERROR_BYTES = 8 * limits.KIB
"""The schema as quoted in an invalid output's error (the tool's parameters hold it
whole); with the errors it stays under ``limits.MAX_ERROR_BYTES``."""


def output_schema_problem(
    schema: dict[str, JsonValue] | None, offered: Iterable[str]
) -> str | None:
    """Why an agent cannot finish with a typed result under ``schema``, or ``None``.

    Checked once, when the run starts: a schema that cannot be used would leave the
    model no way to finish.

    Args:
        schema: The agent's output schema; ``None`` asks for no typed result.
        offered: The tools the agent has.
    """
    if schema is None:
        return None
    problem = json_schema.schema_problem(schema, MAX_OUTPUT_SCHEMA_BYTES)
    if problem is not None:
        return f"output_schema: {problem}"
    if TASK_FINISH not in offered:
        return f"output_schema: the agent must have {TASK_FINISH} to return its output"
    return None


def check_output(args: TypedTaskFinishArgs, schema: dict[str, JsonValue]) -> None:
    """Check a ``_task_finish`` output against the agent's schema, as the model needs it.

    Raises:
        ToolError: With code ``invalid_output`` when ``output`` is missing or does not
            match: the validator's first errors, each at its JSON path in the output
            (``$`` is the output itself), then the schema to match.
    """
    shown = limits.truncate(json.dumps(schema, separators=(",", ":")), SCHEMA_IN_ERROR_BYTES)
    if "output" not in args.model_fields_set:
        raise ToolError(
            f"{TASK_FINISH} needs `output`, your result as JSON matching the agent's "
            f"output schema. Call {TASK_FINISH} again with `message` and an `output` "
            f"that matches this JSON Schema: {shown}",
            code="invalid_output",
        )
    problems, count = json_schema.errors(args.output, schema)
    if not problems:
        return
    counted = f"{count} error" if count == 1 else f"{count} errors"
    if count > len(problems):
        counted += f", the first {len(problems)} shown"
    raise ToolError(
        f"the output does not match its schema ({counted}):\n"
        + "\n".join(f"- {p}" for p in problems)
        + f"\nNothing was finished. Call {TASK_FINISH} again with an `output` that "
        f"matches this JSON Schema: {shown}",
        code="invalid_output",
    )
