"""The ``${...}`` expression language of workflow graphs: parse, check, evaluate.

Graph specs name their data with small expressions inside templates:
``"Write the section ${item}"``, ``on: "${verdict.decision}"``,
``"${join(result, ', ')}"``. The graph workflow evaluates them in workflow code,
so everything here is pure and deterministic: no ``eval``, no I/O, no clocks. Input
is bounded (template and expression length, nesting depth) so a hostile spec cannot
exhaust the stack or the worker's memory.

Grammar (lowest precedence first)::

    template   := (text | "$${" | "${" expression "}")*
    expression := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := unary (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") unary)?
    unary      := "-" unary | postfix
    postfix    := primary ("." NAME | "[" expression "]")*
    primary    := NUMBER | STRING | "true" | "false" | "null" | NAME
                | NAME "(" [expression ("," expression)*] ")"
                | "[" [expression ("," expression)*] "]" | "(" expression ")"

A template that is exactly one ``${...}`` evaluates to the value itself (a list stays a
list); any other template renders to a string, values written as JSON (strings as they
are). ``and``/``or`` return one of their operands, as in Python, so
``${note or 'none'}`` works.

Three steps, each its own function: :func:`parse_template` (text to a frozen AST),
:func:`check` (static check against the shapes of the names in scope, for validation
before a run) and :func:`render` (evaluate over a scope of values). Every error is an
:class:`ExpressionError` carrying the position in the template.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

MAX_TEMPLATE_CHARS: Final = 100_000
"""Longest template accepted: prompts may be long, but not unbounded."""
MAX_EXPRESSION_CHARS: Final = 2_000
"""Longest single ``${...}`` expression."""
MAX_DEPTH: Final = 32
"""Deepest nesting of an expression's syntax tree; keeps parser and evaluator recursion
far below Python's stack limit whatever the input."""

JSON_TYPES: Final = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})


class ExpressionError(ValueError):
    """An expression that does not parse, does not check, or fails to evaluate.

    Attributes:
        message: What is wrong, phrased to say how to fix it.
        position: Index in ``text`` where the problem is.
        text: The whole template the expression is part of.
    """

    def __init__(self, message: str, position: int = 0, text: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.text = text

    def __str__(self) -> str:
        if not self.text:
            return self.message
        start = max(self.position - 30, 0)
        snippet = self.text[start : self.position + 30]
        prefix = "..." if start else ""
        suffix = "..." if self.position + 30 < len(self.text) else ""
        return f"{self.message} (at {self.position}: {prefix}{snippet}{suffix})"


# --- Syntax tree ---------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    """A constant: string, number, boolean or null."""

    value: Any
    pos: int


@dataclass(frozen=True)
class Name:
    """A name looked up in the scope (a state field, ``item``, ``result``, ``visits``)."""

    name: str
    pos: int


@dataclass(frozen=True)
class Attr:
    """``obj.name``: a field of an object."""

    obj: Expr
    name: str
    pos: int


@dataclass(frozen=True)
class Index:
    """``obj[index]``: an item of a list or a field of an object."""

    obj: Expr
    index: Expr
    pos: int


@dataclass(frozen=True)
class Compare:
    """A comparison: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``not in``."""

    op: str
    left: Expr
    right: Expr
    pos: int


@dataclass(frozen=True)
class BoolOp:
    """``a and b and ...`` or ``a or b or ...``, kept flat so long chains stay shallow."""

    op: str
    operands: tuple[Expr, ...]
    pos: int


@dataclass(frozen=True)
class Not:
    """``not operand``."""

    operand: Expr
    pos: int


@dataclass(frozen=True)
class Neg:
    """``-operand``, for numbers."""

    operand: Expr
    pos: int


@dataclass(frozen=True)
class Call:
    """``func(args...)``, ``func`` from the fixed table :data:`FUNCTIONS`."""

    func: str
    args: tuple[Expr, ...]
    pos: int


@dataclass(frozen=True)
class ListExpr:
    """``[a, b, ...]``."""

    items: tuple[Expr, ...]
    pos: int


Expr = Literal | Name | Attr | Index | Compare | BoolOp | Not | Neg | Call | ListExpr


@dataclass(frozen=True)
class Template:
    """A parsed template: text pieces and expressions, in order.

    Attributes:
        text: The template as written.
        parts: Literal text (``str``) and expressions, in order.
    """

    text: str
    parts: tuple[str | Expr, ...]

    @property
    def single(self) -> Expr | None:
        """The expression when the template is exactly one ``${...}``, else ``None``."""
        if len(self.parts) == 1 and not isinstance(self.parts[0], str):
            return self.parts[0]
        return None

    @property
    def expressions(self) -> tuple[Expr, ...]:
        """The template's expressions, in order."""
        return tuple(p for p in self.parts if not isinstance(p, str))


# --- Tokens --------------------------------------------------------------------------

# ASCII only: str.isdigit() and str.isalpha() accept other scripts' digits and letters,
# which int() and the names of state fields do not.
_DIGITS: Final = frozenset("0123456789")
_NAME_START: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS: Final = _NAME_START | _DIGITS
_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "true", "false", "null"})
_OPERATORS: Final = ("==", "!=", "<=", ">=", "<", ">", "(", ")", "[", "]", ".", ",", "-")
_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "$": "$"}


@dataclass(frozen=True)
class _Token:
    kind: str
    """``num``, ``str``, ``name``, ``kw``, ``op`` or ``end``."""
    value: Any
    pos: int


def _lex(text: str, start: int) -> tuple[list[_Token], int]:
    """The tokens of the expression starting at ``start``, up to its closing ``}``.

    Returns the tokens (ending with an ``end`` token) and the index of the ``}``.
    """
    tokens: list[_Token] = []
    i = start
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "}":
            tokens.append(_Token("end", None, i))
            return tokens, i
        elif c in "'\"":
            value, end = _lex_string(text, i)
            tokens.append(_Token("str", value, i))
            i = end
        elif c in _DIGITS:
            tokens.append(_lex_number(text, i))
            i = _number_end(text, i)
        elif c in _NAME_START:
            j = i + 1
            while j < len(text) and text[j] in _NAME_CHARS:
                j += 1
            word = text[i:j]
            tokens.append(_Token("kw" if word in _KEYWORDS else "name", word, i))
            i = j
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:
                raise ExpressionError(
                    f"unexpected character {c!r} (operators: == != < <= > >= and or not in)",
                    i,
                    text,
                )
            tokens.append(_Token("op", op, i))
            i += len(op)
    raise ExpressionError("'${' is never closed: add '}'", start - 2, text)


def _lex_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\":
            esc = text[i + 1 : i + 2]
            if esc not in _ESCAPES:
                raise ExpressionError(
                    f"unknown escape '\\{esc}' (known: \\n \\t \\r \\\\ \\' \\\")", i, text
                )
            out.append(_ESCAPES[esc])
            i += 2
        else:
            out.append(c)
            i += 1
    raise ExpressionError(f"string is never closed: add {quote}", start, text)


def _digits_end(text: str, i: int) -> int:
    while i < len(text) and text[i] in _DIGITS:
        i += 1
    return i


def _number_end(text: str, i: int) -> int:
    """End of the number at ``i``: digits, then maybe ``.digits``, then maybe an exponent."""
    i = _digits_end(text, i)
    if text.startswith(".", i) and text[i + 1 : i + 2] in _DIGITS:
        i = _digits_end(text, i + 1)
    if text[i : i + 1] in ("e", "E"):
        j = i + 1 + (text[i + 1 : i + 2] in ("+", "-"))
        if text[j : j + 1] in _DIGITS:
            i = _digits_end(text, j)
    return i


def _lex_number(text: str, start: int) -> _Token:
    word = text[start : _number_end(text, start)]
    if len(word) > 30:
        raise ExpressionError("number too long (at most 30 characters)", start, text)
    is_float = any(c in word for c in ".eE")
    value = float(word) if is_float else int(word)
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError(f"number out of range: {word}", start, text)
    return _Token("num", value, start)


# --- Parser --------------------------------------------------------------------------


class _Parser:
    """Recursive descent over one expression's tokens; ``enter`` bounds the recursion."""

    def __init__(self, tokens: list[_Token], text: str) -> None:
        self.tokens = tokens
        self.text = text
        self.i = 0
        self.depth = 0

    def parse(self) -> Expr:
        if self.peek().kind == "end":
            raise ExpressionError(
                "empty expression: write a name or value inside ${}", self.peek().pos, self.text
            )
        expr = self.or_()
        token = self.peek()
        if token.kind != "end":
            raise self.error(f"unexpected {_describe_token(token)}: expected '}}' or an operator")
        return expr

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def accept(self, kind: str, value: str) -> bool:
        token = self.peek()
        if token.kind == kind and token.value == value:
            self.i += 1
            return True
        return False

    def expect(self, value: str) -> None:
        if not self.accept("op", value):
            raise self.error(f"expected {value!r}, found {_describe_token(self.peek())}")

    def error(self, message: str) -> ExpressionError:
        return ExpressionError(message, self.peek().pos, self.text)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested too deeply (at most {MAX_DEPTH} levels)")

    def or_(self) -> Expr:
        return self.bool_op("or", self.and_)

    def and_(self) -> Expr:
        return self.bool_op("and", self.not_)

    def bool_op(self, op: str, operand: Callable[[], Expr]) -> Expr:
        pos = self.peek().pos
        operands = [operand()]
        while self.accept("kw", op):
            operands.append(operand())
        return operands[0] if len(operands) == 1 else BoolOp(op, tuple(operands), pos)

    def not_(self) -> Expr:
        token = self.peek()
        if self.accept("kw", "not"):
            self.enter()
            operand = self.not_()
            self.depth -= 1
            return Not(operand, token.pos)
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.unary()
        token = self.peek()
        if token.kind == "op" and token.value in ("==", "!=", "<", "<=", ">", ">="):
            op = self.take().value
        elif self.accept("kw", "in"):
            op = "in"
        elif token.kind == "kw" and token.value == "not":
            self.take()
            if not self.accept("kw", "in"):
                message = "expected 'in' after 'not' (write 'x not in y')"
                raise ExpressionError(message, token.pos, self.text)
            op = "not in"
        else:
            return left
        right = self.unary()
        following = self.peek()
        if following.kind == "op" and following.value in ("==", "!=", "<", "<=", ">", ">="):
            raise self.error("comparisons do not chain: write 'a < b and b < c'")
        return Compare(op, left, right, token.pos)

    def unary(self) -> Expr:
        token = self.peek()
        if self.accept("op", "-"):
            self.enter()
            operand = self.unary()
            self.depth -= 1
            return Neg(operand, token.pos)
        return self.postfix()

    def postfix(self) -> Expr:
        expr = self.primary()
        while True:
            token = self.peek()
            if self.accept("op", "."):
                name = self.take()
                if name.kind not in ("name", "kw"):
                    raise ExpressionError("expected a field name after '.'", name.pos, self.text)
                expr = Attr(expr, name.value, token.pos)
            elif self.accept("op", "["):
                index = self.nested(self.or_)
                self.expect("]")
                expr = Index(expr, index, token.pos)
            else:
                return expr

    def nested(self, parse: Callable[[], Expr]) -> Expr:
        self.enter()
        expr = parse()
        self.depth -= 1
        return expr

    def primary(self) -> Expr:
        token = self.take()
        if token.kind in ("num", "str"):
            return Literal(token.value, token.pos)
        if token.kind == "kw" and token.value in ("true", "false", "null"):
            return Literal({"true": True, "false": False, "null": None}[token.value], token.pos)
        if token.kind == "name":
            if self.accept("op", "("):
                return Call(token.value, self.sequence(")"), token.pos)
            return Name(token.value, token.pos)
        if token.kind == "op" and token.value == "(":
            expr = self.nested(self.or_)
            self.expect(")")
            return expr
        if token.kind == "op" and token.value == "[":
            return ListExpr(self.sequence("]"), token.pos)
        raise ExpressionError(
            f"unexpected {_describe_token(token)}: expected a value or a name", token.pos, self.text
        )

    def sequence(self, close: str) -> tuple[Expr, ...]:
        items: list[Expr] = []
        if self.accept("op", close):
            return ()
        while True:
            items.append(self.nested(self.or_))
            if self.accept("op", close):
                return tuple(items)
            self.expect(",")


def _describe_token(token: _Token) -> str:
    if token.kind == "end":
        return "end of expression"
    if token.kind == "str":
        return f"string {token.value!r}"
    return repr(str(token.value))


def _children(expr: Expr) -> tuple[Expr, ...]:
    if isinstance(expr, Attr):
        return (expr.obj,)
    if isinstance(expr, Index):
        return (expr.obj, expr.index)
    if isinstance(expr, Compare):
        return (expr.left, expr.right)
    if isinstance(expr, BoolOp):
        return expr.operands
    if isinstance(expr, Not | Neg):
        return (expr.operand,)
    if isinstance(expr, Call):
        return expr.args
    if isinstance(expr, ListExpr):
        return expr.items
    return ()


def _check_depth(expr: Expr, text: str) -> None:
    """Reject trees deeper than :data:`MAX_DEPTH`; iterative, so it cannot overflow itself.

    The parser bounds its own recursion, but a long ``a.b.c...`` chain is parsed in a
    loop and would still make a deep tree for the evaluator.
    """
    stack: list[tuple[Expr, int]] = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(
                f"expression nested too deeply (at most {MAX_DEPTH} levels)", node.pos, text
            )
        stack.extend((child, depth + 1) for child in _children(node))


def parse_template(text: str) -> Template:
    """Parse a template: text with ``${expression}`` pieces (``$${`` for a literal ``${``).

    Raises:
        ExpressionError: The template is too long or an expression does not parse.
    """
    if len(text) > MAX_TEMPLATE_CHARS:
        raise ExpressionError(f"template too long ({len(text)} > {MAX_TEMPLATE_CHARS} characters)")
    parts: list[str | Expr] = []
    buffer: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$${", i):
            buffer.append("${")
            i += 3
        elif text.startswith("${", i):
            if buffer:
                parts.append("".join(buffer))
                buffer = []
            expr, i = _parse_piece(text, i)
            parts.append(expr)
        else:
            j = text.find("$", i + 1)
            j = len(text) if j < 0 else j
            buffer.append(text[i:j])
            i = j
    if buffer:
        parts.append("".join(buffer))
    return Template(text, tuple(parts))


def _parse_piece(text: str, start: int) -> tuple[Expr, int]:
    """Parse the ``${...}`` at ``start``; returns it and the index after its ``}``."""
    tokens, end = _lex(text, start + 2)
    if end - start - 2 > MAX_EXPRESSION_CHARS:
        raise ExpressionError(
            f"expression too long (at most {MAX_EXPRESSION_CHARS} characters)", start, text
        )
    expr = _Parser(tokens, text).parse()
    _check_depth(expr, text)
    return expr, end + 1


def source_of(expr: Expr) -> str:
    """The expression written back as text, for messages (``verdict.decision``)."""
    if isinstance(expr, Literal):
        return json.dumps(expr.value) if not isinstance(expr.value, str) else repr(expr.value)
    if isinstance(expr, Name):
        return expr.name
    if isinstance(expr, Attr):
        return f"{source_of(expr.obj)}.{expr.name}"
    if isinstance(expr, Index):
        return f"{source_of(expr.obj)}[{source_of(expr.index)}]"
    if isinstance(expr, Compare):
        return f"{source_of(expr.left)} {expr.op} {source_of(expr.right)}"
    if isinstance(expr, BoolOp):
        return f" {expr.op} ".join(source_of(o) for o in expr.operands)
    if isinstance(expr, Not):
        return f"not {source_of(expr.operand)}"
    if isinstance(expr, Neg):
        return f"-{source_of(expr.operand)}"
    if isinstance(expr, Call):
        return f"{expr.func}({', '.join(source_of(a) for a in expr.args)})"
    return f"[{', '.join(source_of(i) for i in expr.items)}]"


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
