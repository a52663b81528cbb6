"""The ``${...}`` expression language: parsing, evaluation, templates, checks, bounds."""

from __future__ import annotations

import random
from typing import Any

import pytest

from duragent.workflows.graph_expr import (
    ANY,
    MAX_DEPTH,
    MAX_EXPRESSION_CHARS,
    MAX_TEMPLATE_CHARS,
    Attr,
    ExpressionError,
    Name,
    Shape,
    check,
    parse_template,
    render,
    render_value,
)

SCOPE: dict[str, Any] = {
    "topic": "AI",
    "sections": ["intro", "body", "end"],
    "verdict": {"decision": "revise", "note": None, "scores": [3, 5]},
    "count": 3,
    "ratio": 0.5,
    "flag": True,
    "empty": [],
    "visits": {"review": 2},
}


def ev(text: str, scope: dict[str, Any] | None = None) -> Any:
    return render("${" + text + "}", SCOPE if scope is None else scope)


def error_of(template: str, scope: dict[str, Any] | None = None) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        render(template, SCOPE if scope is None else scope)
    return caught.value


# --- literals, names, paths ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("'single'", "single"),
        ('"double"', "double"),
        ("'it\\'s'", "it's"),
        ("'a\\nb'", "a\nb"),
        ("42", 42),
        ("4.25", 4.25),
        ("1e3", 1000.0),
        ("-7", -7),
        ("true", True),
        ("false", False),
        ("null", None),
        ("[1, 'a', null]", [1, "a", None]),
        ("[]", []),
    ],
)
def test_literals(text: str, value: Any) -> None:
    assert ev(text) == value
    assert type(ev(text)) is type(value)


def test_names_paths_and_indexing() -> None:
    assert ev("topic") == "AI"
    assert ev("verdict.decision") == "revise"
    assert ev("verdict['decision']") == "revise"
    assert ev("verdict.scores[1]") == 5
    assert ev("sections[0]") == "intro"
    assert ev("sections[-1]") == "end"
    assert ev("sections[2]") == "end"
    assert ev("visits.review") == 2
    assert ev("(verdict).scores[0]") == 3


def test_a_single_expression_keeps_its_value_and_text_around_makes_a_string() -> None:
    assert render("${sections}", SCOPE) == ["intro", "body", "end"]
    assert render("${count}", SCOPE) == 3
    assert render("n=${count}", SCOPE) == "n=3"
    assert render("${count}${count}", SCOPE) == "33"
    assert render(" ${topic}", SCOPE) == " AI"


def test_values_render_as_json_in_text() -> None:
    rendered = render("${flag} ${verdict.note} ${ratio} ${sections} ${verdict.scores}", SCOPE)
    assert rendered == 'true null 0.5 ["intro", "body", "end"] [3, 5]'
    assert render("About ${topic}.", SCOPE) == "About AI."  # strings without quotes


def test_plain_text_and_escaped_dollar_brace() -> None:
    assert render("no expressions, $5 and {braces}", SCOPE) == "no expressions, $5 and {braces}"
    assert render("literal $${topic} and ${topic}", SCOPE) == "literal ${topic} and AI"
    assert render("", SCOPE) == ""


def test_a_closing_brace_inside_a_string_does_not_end_the_expression() -> None:
    assert render("${join(sections, '}')}!", SCOPE) == "intro}body}end!"


# --- operators ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("count == 3", True),
        ("count == 3.0", True),
        ("count != 3", False),
        ("flag == 1", False),  # JSON equality: true is not 1
        ("sections == ['intro', 'body', 'end']", True),
        ("verdict.scores == [3, 5]", True),
        ("count < 4", True),
        ("count <= 3", True),
        ("count > 3", False),
        ("count >= 3.5", False),
        ("'abc' < 'abd'", True),
        ("'body' in sections", True),
        ("'x' in sections", False),
        ("'x' not in sections", True),
        ("'decision' in verdict", True),
        ("'I' in topic", True),
        ("5 in verdict.scores", True),
        ("true in [1]", False),
    ],
)
def test_comparisons(text: str, value: bool) -> None:
    assert ev(text) is value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("flag and count", 3),  # Python semantics: the deciding operand
        ("empty and count", []),
        ("empty or topic", "AI"),
        ("verdict.note or 'none'", "none"),
        ("empty or null or 0", 0),
        ("not flag", False),
        ("not empty", True),
        ("not not topic", True),
        ("count > 1 and topic == 'AI' and not empty", True),
        ("count > 5 or 'body' in sections", True),
        ("not count == 3", False),  # not binds looser than ==
        ("(count == 3) == true", True),
    ],
)
def test_boolean_operators(text: str, value: Any) -> None:
    assert ev(text) == value
    assert type(ev(text)) is type(value)


def test_and_or_short_circuit() -> None:
    # The right side would fail (unknown field) if it were evaluated.
    assert ev("flag or missing.field") is True
    assert ev("empty and missing.field") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("len(sections)", 3),
        ("len(topic)", 2),
        ("len(verdict)", 3),
        ("join(sections, ', ')", "intro, body, end"),
        ("join(verdict.scores, '+')", "3+5"),
        ("str(count)", "3"),
        ("str(flag)", "true"),
        ("str(topic)", "AI"),
        ("int('12')", 12),
        ("int(' 7 ')", 7),
        ("int(ratio)", 0),
        ("lower('MiXed')", "mixed"),
        ("upper('ai')", "AI"),
        ("keys(verdict)", ["decision", "note", "scores"]),
        ("len(keys(verdict)) == 3", True),
    ],
)
def test_functions(text: str, value: Any) -> None:
    assert ev(text) == value


# --- errors at run time ---------------------------------------------------------------


def test_unknown_field_teaches_with_the_fields_and_a_guess() -> None:
    error = error_of("Report: ${sectons}")
    assert error.position == 10
    assert error.message.startswith("unknown field 'sectons', did you mean 'sections'?")
    assert "(fields: topic, sections, verdict" in error.message
    assert "at 10" in str(error)


@pytest.mark.parametrize(
    ("template", "position", "fragment"),
    [
        ("${verdict.decison}", 9, "'verdict' has no field 'decison', did you mean 'decision'?"),
        ("${topic.x}", 7, "'topic' is a string, not an object"),
        ("${sections[3]}", 10, "index 3 is out of range: 'sections' has 3 items"),
        ("${sections['a']}", 10, "a list is indexed by an integer, not string"),
        ("${verdict[0]}", 9, "an object is indexed by a string, not integer"),
        ("${count[0]}", 7, "only lists and objects have items"),
        ("${count < 'a'}", 8, "cannot compare integer with string using '<'"),
        ("${flag < 1}", 7, "cannot compare boolean with integer"),
        ("${1 in count}", 4, "'in' needs a list, object or string on the right"),
        ("${1 in topic}", 4, "'in' string needs a string on the left"),
        ("${-topic}", 2, "'-' takes a number, not string"),
        ("${lenn(topic)}", 2, "unknown function 'lenn', did you mean 'len'?"),
        ("${len(topic, 1)}", 2, "len() takes 1 argument, not 2"),
        ("${len(count)}", 2, "len() takes a string, list or object, not integer"),
        ("${join(topic, ',')}", 2, "join() takes a list and a string separator"),
        ("${int('x1')}", 2, "int() cannot read 'x1' as an integer"),
        ("${keys(sections)}", 2, "keys() takes an object, not array"),
        ("${upper(3)}", 2, "upper() takes a string, not integer"),
    ],
)
def test_evaluation_errors_say_where_and_why(template: str, position: int, fragment: str) -> None:
    error = error_of(template)
    assert fragment in error.message
    assert error.position == position
    assert error.text == template


@pytest.mark.parametrize(
    ("template", "position", "fragment"),
    [
        ("abc ${topic", 4, "'${' is never closed: add '}'"),
        ("${}", 2, "empty expression"),
        ("${ 'abc }", 3, "string is never closed"),
        ("${topic +}", 8, "unexpected character '+'"),
        ("${topic topic}", 8, "unexpected 'topic': expected '}' or an operator"),
        ("${(topic}", 8, "expected ')'"),
        ("${a < b < c}", 8, "comparisons do not chain"),
        ("${a not b}", 4, "expected 'in' after 'not'"),
        ("${a.}", 4, "expected a field name after '.'"),
        ("${'\\q'}", 3, "unknown escape '\\q'"),
        ("${f(a,)}", 6, "expected a value or a name"),
        ("${1" + "0" * 40 + "}", 2, "number too long"),
        ("${1e999}", 2, "number out of range"),
        ("${caf\u00e9}", 5, "unexpected character '\u00e9'"),  # ASCII names only
        ("${\u00e9t\u00e9}", 2, "unexpected character"),
        ("${\u00b2}", 2, "unexpected character"),  # a digit to isdigit(), not to int()
        ("${topic == 'x' 'y'}", 15, "unexpected string 'y'"),
    ],
)
def test_syntax_errors_say_where_and_why(template: str, position: int, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_template(template)
    assert fragment in caught.value.message
    assert caught.value.position == position


def test_never_evaluates_python() -> None:
    with pytest.raises(ExpressionError, match="unknown function '__import__'"):
        render("${__import__('os')}", {})
    with pytest.raises(ExpressionError, match="has no field '__class__'"):
        render("${topic.__class__}", {"topic": {}})


# --- bounds ---------------------------------------------------------------------------


def test_nesting_is_bounded_for_parens_not_and_paths() -> None:
    deep = "${" + "(" * (MAX_DEPTH + 5) + "1" + ")" * (MAX_DEPTH + 5) + "}"
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse_template(deep)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse_template("${" + "not " * (MAX_DEPTH + 5) + "true}")
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse_template("${a" + ".b" * (MAX_DEPTH + 5) + "}")
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse_template("${" + "[" * 1000 + "]" * 1000 + "}")
    assert render("${" + "(" * 10 + "1" + ")" * 10 + "}", {}) == 1


def test_long_and_or_chains_stay_flat() -> None:
    chain = " or ".join(["false"] * 150) + " or 'found'"
    assert render("${" + chain + "}", {}) == "found"


def test_length_is_bounded() -> None:
    with pytest.raises(ExpressionError, match="template too long"):
        parse_template("x" * (MAX_TEMPLATE_CHARS + 1))
    with pytest.raises(ExpressionError, match="expression too long"):
        parse_template("${" + " " * MAX_EXPRESSION_CHARS + "a}")
    assert render("x" * 50_000 + "${topic}", SCOPE).endswith("AI")


def test_deeply_nested_data_fails_as_an_expression_error() -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ExpressionError, match="nested too deeply to compare"):
        render("${a == b}", {"a": deep, "b": deep})


# --- templates inside values ----------------------------------------------------------


def test_render_value_renders_strings_inside_json() -> None:
    value = {"title": "On ${topic}", "parts": ["${sections}", 3, {"n": "${count}"}], "x": None}
    assert render_value(value, SCOPE) == {
        "title": "On AI",
        "parts": [["intro", "body", "end"], 3, {"n": 3}],
        "x": None,
    }


def test_parse_gives_a_frozen_tree() -> None:
    template = parse_template("a ${verdict.decision} b")
    assert template.parts[0] == "a "
    assert template.expressions == (Attr(Name("verdict", 4), "decision", 11),)
    assert template.single is None
    assert parse_template("${x}").single == Name("x", 2)
    with pytest.raises(AttributeError):
        template.parts[1].name = "other"  # type: ignore[union-attr,misc]


# --- static checks --------------------------------------------------------------------

SHAPES = {
    "topic": Shape.of("string"),
    "sections": Shape.of("array", items=Shape.of("string")),
    "verdict": Shape.from_schema(
        {
            "type": "object",
            "properties": {"decision": {"enum": ["approve", "revise"]}, "note": {"type": "string"}},
        }
    ),
    "loose": Shape.of("object"),
    "anything": ANY,
}


def messages(template: str, hints: dict[str, str] | None = None) -> list[str]:
    return [e.message for e in check(template, SHAPES, hints=hints).errors]


def test_check_passes_good_templates_and_infers_shapes() -> None:
    assert messages("Write ${topic} in ${len(sections)} parts") == []
    assert check("${sections}", SHAPES).shape == SHAPES["sections"]
    assert check("${sections[0]}", SHAPES).shape == Shape.of("string")
    assert check("${verdict.decision}", SHAPES).shape.enum == ("approve", "revise")
    assert check("${verdict['note']}", SHAPES).shape == Shape.of("string")
    assert check("a ${topic}", SHAPES).shape == Shape.of("string")
    assert check("${len(topic)}", SHAPES).shape == Shape.of("integer")
    assert check("${keys(verdict)}", SHAPES).shape.items == Shape.of("string")
    assert check("${loose.anything.goes}", SHAPES).errors == ()
    assert check("${anything[0].x < 3}", SHAPES).errors == ()


def test_check_reports_every_problem_with_positions() -> None:
    errors = check("${sectons} and ${verdict.decison} and ${topic.x}", SHAPES).errors
    assert [(e.position, e.message.split(",")[0].split(":")[0]) for e in errors] == [
        (2, "unknown field 'sectons'"),
        (24, "'verdict' has no field 'decison'"),
        (45, "'topic' is a string"),
    ]


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("${lenn(topic)}", "unknown function 'lenn'"),
        ("${len()}", "len() takes 1 argument, not 0"),
        ("${join(topic, ',')}", "join() argument 1 must be an array, not a string"),
        ("${join(sections, 1)}", "join() argument 2 must be a string, not an integer"),
        ("${upper(sections)}", "upper() argument 1 must be a string"),
        ("${keys(topic)}", "keys() argument 1 must be an object"),
        ("${topic[0]}", "'topic' is a string: only lists and objects have items"),
        ("${sections['a']}", "a list is indexed by an integer"),
        ("${sections < 3}", "cannot compare an array with an integer"),
        ("${'a' in len(topic)}", "'in' needs a list"),
        ("${-topic}", "'-' takes a number"),
        ("${sections.first}", "'sections' is an array, not an object"),
    ],
)
def test_check_reports_type_errors(template: str, fragment: str) -> None:
    found = messages(template)
    assert len(found) == 1, found
    assert fragment in found[0]


def test_check_reports_syntax_errors_and_uses_hints() -> None:
    assert messages("${topic") == ["'${' is never closed: add '}'"]
    hint = "'result' is only defined in a node's writes"
    assert messages("${result.x}", hints={"result": hint}) == [hint]


def test_shape_from_schema_reads_types_enums_and_refuses_to_guess() -> None:
    assert Shape.from_schema({"type": ["string", "null"]}).types == frozenset({"string", "null"})
    assert Shape.from_schema({"enum": [1, 2]}).types == frozenset({"integer"})
    assert Shape.from_schema({"const": "x"}).enum == ("x",)
    assert Shape.from_schema({"anyOf": [{"type": "string"}]}) == ANY
    assert Shape.from_schema({"type": "strng"}) == ANY
    assert Shape.of("integer").may_be(["number"])
    assert not Shape.of("string").may_be(["number", "array"])


def test_any_input_parses_or_fails_as_an_expression_error() -> None:
    # A hostile spec must never crash the interpreter with anything but ExpressionError.
    rng = random.Random(12)
    alphabet = [*"${}()[]'\"\\.,<>=!-+ 0123456789abcnotdrui_é²\n", "and", "or", "in", "topic"]
    parsed = 0
    for _ in range(5000):
        text = "${" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))) + "}"
        try:
            parse_template(text)
            parsed += 1
            render(text, SCOPE)
        except ExpressionError:
            pass
    assert parsed > 100  # the inputs reached the evaluator, not only the lexer
