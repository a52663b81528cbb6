"""The expression language's values, functions and evaluator.

Private: :mod:`workflows.graph_expr` is the public face.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from duragent.workflows._expr_syntax import (
    Attr,
    BoolOp,
    Call,
    Compare,
    Expr,
    ExpressionError,
    Index,
    Literal,
    Name,
    Neg,
    Not,
    Template,
    parse_template,
    source_of,
)

# --- Values --------------------------------------------------------------------------


def json_type(value: object) -> str:
    """The JSON type of a value: ``string``, ``integer``, ``number``, ``array``, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def to_text(value: object) -> str:
    """How a value reads inside a template: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    # default=str: a value that is not JSON (it should not happen) still renders
    # deterministically instead of failing the workflow task.
    return json.dumps(value, ensure_ascii=False, default=str)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(a: object, b: object) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` is ``1.0``, containers compare deeply."""
    if _is_number(a) and _is_number(b):
        return a == b
    if json_type(a) != json_type(b):
        return False
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(v, b[k]) for k, v in a.items())
    return a == b


class _Fail(Exception):
    """A function's complaint about its arguments; the caller adds the position."""


def _fn_len(value: Any) -> int:
    if not isinstance(value, str | list | tuple | dict):
        raise _Fail(f"len() takes a string, list or object, not {json_type(value)}")
    return len(value)


def _fn_join(items: Any, sep: Any) -> str:
    if not isinstance(items, list | tuple) or not isinstance(sep, str):
        raise _Fail(
            f"join() takes a list and a string separator, not {json_type(items)} and "
            f"{json_type(sep)}"
        )
    return sep.join(to_text(item) for item in items)


def _fn_int(value: Any) -> int:
    if _is_number(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise _Fail(f"int() cannot read {value[:40]!r} as an integer") from None
    raise _Fail(f"int() takes a string or a number, not {json_type(value)}")


def _fn_case(name: str, convert: Callable[[str], str]) -> Callable[[Any], str]:
    def run(value: Any) -> str:
        if not isinstance(value, str):
            raise _Fail(f"{name}() takes a string, not {json_type(value)}")
        return convert(value)

    return run


def _fn_keys(value: Any) -> list[str]:
    if not isinstance(value, dict):
        raise _Fail(f"keys() takes an object, not {json_type(value)}")
    return list(value)


@dataclass(frozen=True)
class _Function:
    run: Callable[..., Any]
    accepts: tuple[frozenset[str] | None, ...]
    """Per argument, the JSON types it takes (``None``: any); its length is the arity."""
    returns: str


def _types(*names: str) -> frozenset[str]:
    return frozenset(names)


FUNCTIONS: Final[Mapping[str, _Function]] = {
    "len": _Function(_fn_len, (_types("string", "array", "object"),), "integer"),
    "join": _Function(_fn_join, (_types("array"), _types("string")), "string"),
    "str": _Function(to_text, (None,), "string"),
    "int": _Function(_fn_int, (_types("string", "number", "integer"),), "integer"),
    "lower": _Function(_fn_case("lower", str.lower), (_types("string"),), "string"),
    "upper": _Function(_fn_case("upper", str.upper), (_types("string"),), "string"),
    "keys": _Function(_fn_keys, (_types("object"),), "array"),
}
"""The functions expressions may call; nothing else is callable."""


# --- Evaluation ----------------------------------------------------------------------


def render(template: str | Template, scope: Mapping[str, Any]) -> Any:
    """Evaluate a template over a scope of values.

    Args:
        template: Template text or a parsed :class:`Template`.
        scope: The names expressions may use (state fields, ``item``, ``result``,
            ``visits``) and their values. Values are read, never changed; a
            single-expression template may return an object of the scope itself.

    Returns:
        The value of the expression when the template is exactly one ``${...}``;
        otherwise the text, each value written with :func:`to_text`.

    Raises:
        ExpressionError: The template does not parse or an expression fails.
    """
    parsed = parse_template(template) if isinstance(template, str) else template
    single = parsed.single
    if single is not None:
        return evaluate(single, scope, parsed.text)
    return "".join(
        part if isinstance(part, str) else to_text(evaluate(part, scope, parsed.text))
        for part in parsed.parts
    )


def render_value(value: Any, scope: Mapping[str, Any]) -> Any:
    """Render every string inside a JSON value (task arguments, subgraph inputs).

    Strings are templates; lists and objects are rendered item by item; other values
    are returned as they are.
    """
    if isinstance(value, str):
        return render(value, scope)
    if isinstance(value, list):
        return [render_value(item, scope) for item in value]
    if isinstance(value, dict):
        return {key: render_value(item, scope) for key, item in value.items()}
    return value


def evaluate(expr: Expr, scope: Mapping[str, Any], text: str = "") -> Any:
    """Evaluate one parsed expression over a scope of values.

    Args:
        expr: The expression (from :func:`parse_template`).
        scope: Names and their values.
        text: The template the expression came from, for error messages.

    Raises:
        ExpressionError: A name is missing, a field or index does not exist, or an
            operator or function got values it does not take.
    """
    try:
        return _Evaluator(scope, text).eval(expr)
    except RecursionError:
        # Trees are bounded, but data is not: comparing two absurdly nested values
        # recurses once per level.
        raise ExpressionError("value nested too deeply to compare", expr.pos, text) from None


class _Evaluator:
    def __init__(self, scope: Mapping[str, Any], text: str) -> None:
        self.scope = scope
        self.text = text

    def fail(self, message: str, expr: Expr) -> ExpressionError:
        return ExpressionError(message, expr.pos, self.text)

    def eval(self, expr: Expr) -> Any:
        if isinstance(expr, Literal):
            return expr.value
        if isinstance(expr, Name):
            return self.name(expr)
        if isinstance(expr, Attr):
            return self.attr(expr, self.eval(expr.obj))
        if isinstance(expr, Index):
            return self.index(expr, self.eval(expr.obj), self.eval(expr.index))
        if isinstance(expr, Compare):
            return self.compare(expr, self.eval(expr.left), self.eval(expr.right))
        if isinstance(expr, BoolOp):
            return self.bool_op(expr)
        if isinstance(expr, Not):
            return not self.eval(expr.operand)
        if isinstance(expr, Neg):
            value = self.eval(expr.operand)
            if not _is_number(value):
                raise self.fail(f"'-' takes a number, not {json_type(value)}", expr)
            return -value
        if isinstance(expr, Call):
            return self.call(expr)
        return [self.eval(item) for item in expr.items]

    def name(self, expr: Name) -> Any:
        if expr.name not in self.scope:
            raise self.fail(_unknown("field", expr.name, self.scope), expr)
        return self.scope[expr.name]

    def attr(self, expr: Attr, obj: Any) -> Any:
        owner = source_of(expr.obj)
        if isinstance(obj, dict):
            if expr.name not in obj:
                raise self.fail(_unknown("field", expr.name, obj, owner), expr)
            return obj[expr.name]
        raise self.fail(
            f"'{owner}' is {_a(json_type(obj))}, not an object: it has no field '{expr.name}'",
            expr,
        )

    def index(self, expr: Index, obj: Any, key: Any) -> Any:
        owner = source_of(expr.obj)
        if isinstance(obj, list | tuple):
            if not isinstance(key, int) or isinstance(key, bool):
                raise self.fail(f"a list is indexed by an integer, not {json_type(key)}", expr)
            if not -len(obj) <= key < len(obj):
                raise self.fail(
                    f"index {key} is out of range: '{owner}' has {len(obj)} items", expr
                )
            return obj[key]
        if isinstance(obj, dict):
            if not isinstance(key, str):
                raise self.fail(f"an object is indexed by a string, not {json_type(key)}", expr)
            if key not in obj:
                raise self.fail(_unknown("field", key, obj, owner), expr)
            return obj[key]
        raise self.fail(
            f"'{owner}' is {_a(json_type(obj))}: only lists and objects have items", expr
        )

    def compare(self, expr: Compare, left: Any, right: Any) -> bool:
        op = expr.op
        if op in ("==", "!="):
            return _equal(left, right) == (op == "==")
        if op in ("in", "not in"):
            return self.contains(expr, left, right) == (op == "in")
        if not (_is_number(left) and _is_number(right)) and not (
            isinstance(left, str) and isinstance(right, str)
        ):
            raise self.fail(
                f"cannot compare {json_type(left)} with {json_type(right)} using '{op}': "
                "both must be numbers or both strings",
                expr,
            )
        result: bool = {
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[op]
        return result

    def contains(self, expr: Compare, item: Any, container: Any) -> bool:
        if isinstance(container, list | tuple):
            return any(_equal(item, x) for x in container)
        if isinstance(container, str | dict):
            if not isinstance(item, str):
                raise self.fail(
                    f"'in' {json_type(container)} needs a string on the left, not "
                    f"{json_type(item)}",
                    expr,
                )
            return item in container
        raise self.fail(
            f"'in' needs a list, object or string on the right, not {json_type(container)}", expr
        )

    def bool_op(self, expr: BoolOp) -> Any:
        # Python's short-circuit: the first operand that decides, so `note or 'none'`
        # gives a default.
        value: Any = None
        for operand in expr.operands:
            value = self.eval(operand)
            if bool(value) == (expr.op == "or"):
                return value
        return value

    def call(self, expr: Call) -> Any:
        function = FUNCTIONS.get(expr.func)
        if function is None:
            raise self.fail(_unknown("function", expr.func, FUNCTIONS), expr)
        if len(expr.args) != len(function.accepts):
            raise self.fail(_arity(expr.func, function, len(expr.args)), expr)
        args = [self.eval(arg) for arg in expr.args]
        try:
            return function.run(*args)
        except _Fail as error:
            raise self.fail(str(error), expr) from None


def _a(type_name: str) -> str:
    return f"an {type_name}" if type_name[0] in "aeiou" else f"a {type_name}"


def _unknown(what: str, name: str, known: Iterable[str], owner: str = "") -> str:
    """``unknown field 'sectons', did you mean 'sections'? (fields: topic, sections)``."""
    names = [str(k) for k in known]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f", did you mean '{close[0]}'?" if close else ""
    listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    kind = "functions" if what == "function" else "fields"
    said = f"'{owner}' has no field '{name}'" if owner else f"unknown {what} '{name}'"
    return f"{said}{hint} ({kind}: {listed or 'none'})"


def _arity(name: str, function: _Function, given: int) -> str:
    wanted = len(function.accepts)
    return f"{name}() takes {wanted} argument{'s' if wanted != 1 else ''}, not {given}"
