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

The parts live in private modules: ``_expr_syntax`` (tree, tokens, parser),
``_expr_eval`` (values, functions, evaluator) and ``_expr_check`` (static checks).
"""

from __future__ import annotations

from duragent.workflows._expr_check import (
    ANY,
    Checked,
    Shape,
    check,
)
from duragent.workflows._expr_eval import (
    FUNCTIONS,
    evaluate,
    json_type,
    render,
    render_value,
    to_text,
)
from duragent.workflows._expr_syntax import (
    JSON_TYPES,
    MAX_DEPTH,
    MAX_EXPRESSION_CHARS,
    MAX_TEMPLATE_CHARS,
    Attr,
    BoolOp,
    Call,
    Compare,
    Expr,
    ExpressionError,
    Index,
    ListExpr,
    Literal,
    Name,
    Neg,
    Not,
    Template,
    parse_template,
    source_of,
)

__all__ = [
    "ANY",
    "FUNCTIONS",
    "JSON_TYPES",
    "MAX_DEPTH",
    "MAX_EXPRESSION_CHARS",
    "MAX_TEMPLATE_CHARS",
    "Attr",
    "BoolOp",
    "Call",
    "Checked",
    "Compare",
    "Expr",
    "ExpressionError",
    "Index",
    "ListExpr",
    "Literal",
    "Name",
    "Neg",
    "Not",
    "Shape",
    "Template",
    "check",
    "evaluate",
    "json_type",
    "parse_template",
    "render",
    "render_value",
    "source_of",
    "to_text",
]
