"""JSON Schema checks that workflow code may run: pure, deterministic, bounded.

An agent's typed output (``AgentInput.output_schema``) is checked here, in the
workflow, when the model calls ``_task_finish``: the check decides whether the run
completes, so it must give the same answer on every replay. The same checks suit any
value a workflow takes against a schema (a graph gate's answer).

Three choices keep it so:

- **Draft 2020-12**, through ``jsonschema``'s ``Draft202012Validator``.
- **No network**: the validator gets an empty ``referencing.Registry``. By default
  ``jsonschema`` still fetches a remote ``$ref`` over HTTP (deprecated, with a
  warning); in a workflow that would be I/O whose answer can change between a run
  and its replay. References inside the schema (``#/$defs/...``, anchors, embedded
  ``$id`` resources) and the JSON Schema meta-schemas resolve; others are reported
  by :func:`schema_problem` before the run starts.
- **No format checks on values**: ``format`` stays an annotation, as 2020-12 makes
  it by default. ``jsonschema`` checks some formats only when optional packages are
  installed, so the same output could pass on one worker and fail on another. The
  schema itself is checked with one format only, ``regex`` (``re.compile``, no
  optional package): a ``pattern`` that does not compile is refused before the run,
  not met as an exception in the middle of it.

Depth is bounded (:data:`MAX_DEPTH`) before anything recurses: the validator recurses
a few frames per level, and a ``RecursionError`` would depend on how deep the
workflow's stack happened to be, which is not replay-safe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import JsonValue

from duragent.activities import limits

MAX_DEPTH = 64
"""Nesting of a schema or a value (objects and arrays): far beyond any real result,
and far below the interpreter's recursion limit (``jsonschema`` takes 4 to 10 frames
a level)."""
MAX_SHOWN_ERRORS = 5
"""Errors listed in a message; the first ones teach enough, all of them would flood."""
MAX_ERROR_CHARS = 300
"""One error's text: ``jsonschema`` quotes the failing value, which may be large."""
_META_SCHEMAS = "https://json-schema.org/"
"""References here resolve from ``jsonschema``'s bundled meta-schemas."""
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
"""Keywords whose values are data, not schemas: a ``$ref`` in them is not a reference."""


def depth(value: object) -> int:
    """How deeply objects and arrays nest in ``value`` (0 for a scalar); iterative."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        children: Any = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        )
        if children is None:
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_DEPTH:
            return deepest  # deep enough to refuse; the rest need not be walked
        stack.extend((child, level + 1) for child in children)
    return deepest


def schema_problem(schema: Mapping[str, JsonValue], max_bytes: int) -> str | None:
    """Why ``schema`` cannot be used to check values, or ``None`` when it can.

    Args:
        schema: A JSON Schema (Draft 2020-12).
        max_bytes: Bound on its compact JSON, in UTF-8 bytes.

    Returns:
        One line naming the problem (its place in the schema as a JSON path), or
        ``None``.
    """
    nbytes = limits.size(json.dumps(schema, separators=(",", ":")))
    if nbytes > max_bytes:
        return limits.too_large("the schema", nbytes, max_bytes)
    if depth(schema) > MAX_DEPTH:
        return f"the schema nests more than {MAX_DEPTH} levels deep"
    # Imported on first use: a worker whose agents declare no schema never pays the
    # ~8 MiB (the sandbox passes these modules through; see worker.plugin).
    from jsonschema import Draft202012Validator, FormatChecker
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema, format_checker=FormatChecker(["regex"]))
    except SchemaError as err:
        return f"not a valid JSON Schema (Draft 2020-12): at {err.json_path}: {_short(err.message)}"
    unresolved = _unresolvable_refs(dict(schema))
    if unresolved:
        return (
            f"the schema's $ref {unresolved[0]!r} cannot be resolved: references must "
            "point inside the schema (e.g. '#/$defs/Name'); nothing is fetched"
        )
    return None


def errors(value: JsonValue, schema: Mapping[str, JsonValue]) -> tuple[list[str], int]:
    """Why ``value`` does not match ``schema``: the first errors, and how many there are.

    Call it with a schema that :func:`schema_problem` accepted.

    Args:
        value: Any JSON value.
        schema: The schema it must match.

    Returns:
        Up to :data:`MAX_SHOWN_ERRORS` lines ``"at $.path: what is wrong"`` (a JSON
        path into ``value``, ``$`` its root), in the validator's order, and the count
        of all errors; ``([], 0)`` when the value matches.
    """
    if depth(value) > MAX_DEPTH:
        return [f"at $: the value nests more than {MAX_DEPTH} levels deep"], 1
    from jsonschema import Draft202012Validator
    from referencing import Registry
    from referencing.exceptions import Unresolvable

    validator = Draft202012Validator(dict(schema), registry=Registry())
    shown: list[str] = []
    count = 0
    try:
        for error in validator.iter_errors(value):
            count += 1
            if len(shown) < MAX_SHOWN_ERRORS:
                shown.append(f"at {error.json_path}: {_short(error.message)}")
    except Unresolvable as err:  # a $dynamicRef the check before the run cannot follow
        return [f"the schema cannot be applied: {_short(str(err))}"], count + 1
    return shown, count


def _unresolvable_refs(schema: dict[str, Any]) -> list[str]:
    """``$ref`` values of ``schema`` that resolve to nothing without fetching."""
    from referencing import Registry
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012

    unresolved: list[str] = []
    root = Registry().resolver_with_root(DRAFT202012.create_resource(schema))
    stack: list[tuple[object, Any]] = [(schema, root)]
    while stack:
        node, resolver = stack.pop()
        if isinstance(node, list):
            stack.extend((item, resolver) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        if node is not schema and isinstance(node.get("$id"), str):
            # An embedded resource: its references are relative to its own $id.
            resolver = resolver.in_subresource(DRAFT202012.create_resource(node))
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith(_META_SCHEMAS):
            try:
                resolver.lookup(ref)
            except Unresolvable:
                unresolved.append(ref)
        stack.extend((v, resolver) for k, v in node.items() if k not in _DATA_KEYWORDS)
    return unresolved


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."
