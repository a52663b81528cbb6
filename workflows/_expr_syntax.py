"""The expression language's syntax: errors, bounds, the tree, tokens and the parser.

Private: :mod:`workflows.graph_expr` is the public face (its docstring has the grammar).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
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
