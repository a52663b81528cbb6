"""The expression language's static checker: shapes of values, checked before a run.

Private: :mod:`workflows.graph_expr` is the public face.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from duragent.workflows._expr_eval import (
    FUNCTIONS,
    _a,
    _arity,
    _unknown,
    json_type,
)
from duragent.workflows._expr_syntax import (
    JSON_TYPES,
    MAX_DEPTH,
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

# --- Static checking -----------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """What is statically known of a value: a small view of a JSON Schema.

    Attributes:
        types: The JSON types it may have; ``None`` when anything goes.
        items: Shape of a list's items, when known.
        properties: Shapes of an object's fields, when declared; an object whose
            properties are declared has no others (a typo there is reported).
        enum: The only values it may take, when known.
    """

    types: frozenset[str] | None = None
    items: Shape | None = None
    properties: Mapping[str, Shape] | None = None
    enum: tuple[Any, ...] | None = None

    @classmethod
    def of(
        cls,
        *types: str,
        items: Shape | None = None,
        properties: Mapping[str, Shape] | None = None,
    ) -> Shape:
        """A shape of the given JSON types (no types: anything)."""
        return cls(frozenset(types) or None, items, properties)

    @classmethod
    def from_schema(cls, schema: Mapping[str, Any] | None, _depth: int = 0) -> Shape:
        """The shape a JSON Schema describes (``type``, ``items``, ``properties``, ``enum``).

        Parts it cannot read (``anyOf``, a malformed ``type``) count as "anything":
        the checker then stays silent instead of reporting false problems.
        """
        if not isinstance(schema, Mapping) or _depth > MAX_DEPTH:
            return ANY
        declared = schema.get("type")
        names = [declared] if isinstance(declared, str) else declared
        types = (
            frozenset(t for t in names if t in JSON_TYPES)
            if isinstance(names, list) and all(t in JSON_TYPES for t in names)
            else None
        )
        enum = schema.get("enum")
        if "const" in schema:
            enum = [schema["const"]]
        if isinstance(enum, list):
            enum_types = frozenset(json_type(v) for v in enum)
            types = types if types is not None else enum_types
        items = schema.get("items")
        props = schema.get("properties")
        return cls(
            types or None,
            cls.from_schema(items, _depth + 1) if isinstance(items, Mapping) else None,
            {str(k): cls.from_schema(v, _depth + 1) for k, v in props.items()}
            if isinstance(props, Mapping)
            else None,
            tuple(enum) if isinstance(enum, list) else None,
        )

    def may_be(self, types: Iterable[str] | None) -> bool:
        """Whether a value of this shape could have one of ``types`` (``None``: any)."""
        if self.types is None or types is None:
            return True
        wanted = set(types)
        if "number" in wanted:
            wanted.add("integer")  # every integer is a number
        return bool(self.types & wanted)

    def describe(self) -> str:
        """The types in words, for messages: ``a string``, ``an array or null``."""
        if self.types is None:
            return "anything"
        return _a(" or ".join(sorted(self.types)))


ANY: Final = Shape()
"""A value nothing is known about."""


@dataclass(frozen=True)
class Checked:
    """What :func:`check` found in a template.

    Attributes:
        shape: The template's value: the expression's shape for a single
            ``${...}``, a string otherwise.
        errors: Every problem found (empty when it checks).
    """

    shape: Shape
    errors: tuple[ExpressionError, ...] = field(default=())


def check(
    template: str | Template,
    scope: Mapping[str, Shape],
    *,
    hints: Mapping[str, str] | None = None,
) -> Checked:
    """Check a template without running it: names, fields, function calls, operand types.

    Reports every problem it can find, not only the first; a part whose shape is
    unknown is given the benefit of the doubt.

    Args:
        template: Template text or a parsed :class:`Template`.
        scope: The names in scope and their shapes.
        hints: Messages for names that are known but not in scope here (e.g.
            ``result`` outside ``writes``), said instead of "unknown field".
    """
    try:
        parsed = parse_template(template) if isinstance(template, str) else template
    except ExpressionError as error:
        return Checked(ANY, (error,))
    checker = _Checker(scope, hints or {}, parsed.text)
    shapes = [checker.infer(expr) for expr in parsed.expressions]
    shape = shapes[0] if parsed.single is not None else Shape.of("string")
    return Checked(shape, tuple(checker.errors))


class _Checker:
    def __init__(self, scope: Mapping[str, Shape], hints: Mapping[str, str], text: str) -> None:
        self.scope = scope
        self.hints = hints
        self.text = text
        self.errors: list[ExpressionError] = []

    def report(self, message: str, expr: Expr) -> Shape:
        self.errors.append(ExpressionError(message, expr.pos, self.text))
        return ANY

    def infer(self, expr: Expr) -> Shape:
        if isinstance(expr, Literal):
            return Shape(frozenset({json_type(expr.value)}), enum=(expr.value,))
        if isinstance(expr, Name):
            return self.name(expr)
        if isinstance(expr, Attr):
            return self.attr(expr, self.infer(expr.obj))
        if isinstance(expr, Index):
            return self.index(expr, self.infer(expr.obj), self.infer(expr.index))
        if isinstance(expr, Compare):
            return self.compare(expr, self.infer(expr.left), self.infer(expr.right))
        if isinstance(expr, BoolOp):
            shapes = [self.infer(operand) for operand in expr.operands]
            return shapes[0] if all(s == shapes[0] for s in shapes) else ANY
        if isinstance(expr, Not):
            self.infer(expr.operand)
            return Shape.of("boolean")
        if isinstance(expr, Neg):
            operand = self.infer(expr.operand)
            if not operand.may_be(["number"]):
                return self.report(f"'-' takes a number, not {operand.describe()}", expr)
            return Shape(operand.types)
        if isinstance(expr, Call):
            return self.call(expr)
        for item in expr.items:
            self.infer(item)
        return Shape.of("array")

    def name(self, expr: Name) -> Shape:
        if expr.name in self.scope:
            return self.scope[expr.name]
        if expr.name in self.hints:
            return self.report(self.hints[expr.name], expr)
        return self.report(_unknown("field", expr.name, self.scope), expr)

    def attr(self, expr: Attr, obj: Shape) -> Shape:
        owner = source_of(expr.obj)
        if not obj.may_be(["object"]):
            return self.report(
                f"'{owner}' is {obj.describe()}, not an object: it has no field '{expr.name}'",
                expr,
            )
        if obj.properties is None:
            return ANY
        if expr.name not in obj.properties:
            return self.report(_unknown("field", expr.name, obj.properties, owner), expr)
        return obj.properties[expr.name]

    def index(self, expr: Index, obj: Shape, key: Shape) -> Shape:
        owner = source_of(expr.obj)
        if not obj.may_be(["array", "object"]):
            return self.report(
                f"'{owner}' is {obj.describe()}: only lists and objects have items", expr
            )
        if obj.types == frozenset({"array"}):
            if not key.may_be(["integer"]):
                return self.report(f"a list is indexed by an integer, not {key.describe()}", expr)
            return obj.items or ANY
        if isinstance(expr.index, Literal) and isinstance(expr.index.value, str):
            return self.attr(Attr(expr.obj, expr.index.value, expr.pos), obj)
        return ANY

    def compare(self, expr: Compare, left: Shape, right: Shape) -> Shape:
        if expr.op in ("in", "not in") and not right.may_be(["array", "object", "string"]):
            self.report(
                f"'in' needs a list, object or string on the right, not {right.describe()}", expr
            )
        elif expr.op in ("<", "<=", ">", ">="):
            numbers = left.may_be(["number"]) and right.may_be(["number"])
            strings = left.may_be(["string"]) and right.may_be(["string"])
            if not (numbers or strings):
                self.report(
                    f"cannot compare {left.describe()} with {right.describe()} using "
                    f"'{expr.op}': both must be numbers or both strings",
                    expr,
                )
        return Shape.of("boolean")

    def call(self, expr: Call) -> Shape:
        args = [self.infer(arg) for arg in expr.args]
        function = FUNCTIONS.get(expr.func)
        if function is None:
            return self.report(_unknown("function", expr.func, FUNCTIONS), expr)
        if len(args) != len(function.accepts):
            return self.report(_arity(expr.func, function, len(args)), expr)
        for n, (arg, accepts) in enumerate(zip(args, function.accepts, strict=True), start=1):
            if not arg.may_be(accepts):
                wanted = " or ".join(sorted(accepts or ()))
                self.report(
                    f"{expr.func}() argument {n} must be {_a(wanted)}, not {arg.describe()}",
                    expr.args[n - 1],
                )
        if expr.func == "keys":
            return Shape.of("array", items=Shape.of("string"))
        return Shape.of(function.returns)
