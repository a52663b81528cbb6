"""A graph run's state and how node results change it: pure functions over JSON values.

The graph workflow calls these in workflow code, after each node: the node's
``writes`` are evaluated with ``result`` in scope, then each written value is combined
with the field's current value by the field's reducer:

- ``last`` replaces the value;
- ``append`` extends a list with a list written (in its order, so a map's results land
  in item order), or adds any other value as one item;
- ``merge`` merges an object written into the current one, key by key (shallow).

Nothing is changed in place: each function returns new containers, so a state the
workflow already recorded (or handed to a query) never changes under it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from duragent.workflows.graph_expr import json_type, render_value
from duragent.workflows.graph_spec import GraphSpec, Node, Reducer, StateField

State = dict[str, Any]
"""Field name to value; values are JSON."""


class StateError(ValueError):
    """A write the state cannot take: an unknown field, or a value its reducer cannot merge."""


def initial_state(spec: GraphSpec, input: Mapping[str, Any] | None = None) -> State:
    """The state a run starts with: every field's initial value, then the run's input.

    Raises:
        StateError: The input names a field the graph does not have.
    """
    unknown = sorted(set(input or {}) - set(spec.state))
    if unknown:
        raise StateError(
            f"input names unknown fields {', '.join(unknown)} (fields: {', '.join(spec.state)})"
        )
    # Copied: a default list or object belongs to the spec, shared by every run.
    state = {name: copy.deepcopy(field.initial()) for name, field in spec.state.items()}
    return state | dict(input or {})


def scope(state: Mapping[str, Any], **names: Any) -> dict[str, Any]:
    """The names expressions see: the state's fields plus ``result``, ``item``, ``visits``.

    Example: ``scope(state, result=answer, visits={"review": 2})``.
    """
    return dict(state) | names


def node_writes(node: Node, result: Any, names: Mapping[str, Any]) -> dict[str, Any]:
    """The values a node's ``writes`` give, before reducers apply.

    Args:
        node: The node that ran.
        result: Its result (a map node's: the list of item results, in item order).
        names: The scope without ``result`` (see :func:`scope`).

    Raises:
        ExpressionError: A write's template fails.
    """
    with_result = dict(names) | {"result": result}
    return {name: render_value(value, with_result) for name, value in node.writes.items()}


def reduce(
    fields: Mapping[str, StateField], state: Mapping[str, Any], updates: Mapping[str, Any]
) -> State:
    """A new state: each update combined with its field's value by the field's reducer.

    Raises:
        StateError: An update names an unknown field, or ``merge`` gets a non-object.
    """
    new = dict(state)
    for name, value in updates.items():
        field = fields.get(name)
        if field is None:
            raise StateError(f"write to unknown field '{name}' (fields: {', '.join(fields)})")
        new[name] = _combine(name, field.reducer, new.get(name), value)
    return new


def _combine(name: str, reducer: Reducer, current: Any, value: Any) -> Any:
    if reducer is Reducer.LAST:
        return value
    if reducer is Reducer.APPEND:
        items = list(current) if isinstance(current, list | tuple) else []
        return items + (list(value) if isinstance(value, list | tuple) else [value])
    if not isinstance(value, dict):
        raise StateError(f"field '{name}' merges objects, but the write is {json_type(value)}")
    fields = current if isinstance(current, dict) else {}
    return fields | value


def apply_writes(
    spec: GraphSpec,
    state: Mapping[str, Any],
    node: Node,
    result: Any,
    *,
    visits: Mapping[str, int] | None = None,
) -> State:
    """The state after a node ran: its ``writes`` evaluated, then reduced into ``state``.

    Args:
        spec: The graph (its state fields and reducers).
        state: The state before the node's writes.
        node: The node that ran.
        result: Its result.
        visits: Runs so far per node, for templates that read ``visits``.

    Raises:
        ExpressionError: A write's template fails.
        StateError: A write the state cannot take.
    """
    names = scope(state, visits=dict(visits or {}))
    return reduce(spec.state, state, node_writes(node, result, names))
