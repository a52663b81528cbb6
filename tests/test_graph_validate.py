"""Graph validation: every problem at once, each rule alone, and clean specs clean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from duragent.workflows.graph_load import load_graph
from duragent.workflows.graph_spec import GraphSpec
from duragent.workflows.graph_validate import GraphSpecError, Problem, raise_for_problems, validate

REPORT = Path(__file__).parent.parent / "examples" / "graphs" / "report.yaml"

STATE: dict[str, Any] = {
    "topic": {"type": "string"},
    "notes": {"type": "array", "reducer": "append"},
    "out": {"type": "string"},
    "meta": {"type": "object", "reducer": "merge"},
    "verdict": {
        "type": "object",
        "properties": {"decision": {"enum": ["approve", "revise"]}, "ok": {"type": "boolean"}},
    },
}


def graph(**parts: Any) -> GraphSpec:
    """A small sound graph (START -> a -> END), with ``parts`` replaced."""
    data: dict[str, Any] = {
        "graph": "g",
        "state": STATE,
        "nodes": {"a": {"agent": {"task": "About ${topic}"}, "writes": "out"}},
        "edges": [["START", "a", "END"]],
    }
    return load_graph(data | parts)


def problems(spec: GraphSpec, known_tasks: set[str] | None = None) -> list[tuple[str, str]]:
    return [(p.where, p.message) for p in validate(spec, known_tasks=known_tasks)]


def only(spec: GraphSpec, where: str, fragment: str, known_tasks: set[str] | None = None) -> None:
    """Assert the spec has exactly one problem, at ``where``, saying ``fragment``."""
    found = problems(spec, known_tasks)
    assert len(found) == 1, found
    assert found[0][0] == where
    assert fragment in found[0][1], found[0][1]


# --- clean specs ----------------------------------------------------------------------


def test_clean_specs_have_no_problems() -> None:
    assert validate(load_graph(REPORT.read_text())) == []
    assert validate(graph()) == []
    assert validate(graph(), known_tasks=set()) == []  # no task nodes to look up


def test_a_spec_that_went_through_a_data_converter_stays_clean() -> None:
    spec = load_graph(REPORT.read_text())
    again = GraphSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
    assert again.fingerprint() == spec.fingerprint()
    assert validate(again) == []


def test_every_problem_is_reported_at_once() -> None:
    spec = load_graph(
        """
        graph: broken
        state:
          topic: {type: string}
          tags:  {type: string, reducer: append}
        output: summary
        nodes:
          plan:   {agent: {task: "Plan ${topc}"}, writes: {plan: "${result}"}}
          write:  {map: {over: "${topic}", node: {gate: {prompt: "?"}}}}
          review: {gate: {prompt: "ok?", deadline: 2 days}}
          orphan: {task: {ref: "tools:missing"}}
          loop:   {agent: {task: "again"}}
        edges:
          - [START, plan, write, review, loop, review]
          - {from: review, to: nowhere}
          - [review, END]
        """
    )
    found = validate(spec, known_tasks={"tools:known"})
    assert {p.where for p in found} == {
        "state.tags.reducer",  # append on a string
        "output",  # no such field
        "edges[5].to",  # an unknown node
        "nodes.orphan",  # unreachable
        "nodes.review.max_visits",  # review <-> loop, unbounded
        "nodes.plan.agent.task",  # unknown field in a template
        "nodes.plan.writes.plan",  # write to an unknown field
        "nodes.write.map.over",  # not a list
        "nodes.write.map.node",  # a gate inside a map
        "nodes.review.gate.deadline",  # not a duration
        "nodes.orphan.task.ref",  # not registered
    }
    assert len(found) == 11
    assert all(isinstance(p, Problem) and p.message for p in found)


def test_problems_are_listed_in_a_stable_order() -> None:
    spec = graph(output="nope", nodes={"a": {"agent": {"task": "${x} ${y}"}}})
    first = validate(spec)
    assert first == validate(spec)
    assert [p.where for p in first] == ["output", "nodes.a.agent.task", "nodes.a.agent.task"]


def test_raise_for_problems() -> None:
    assert raise_for_problems(graph()) == graph()
    with pytest.raises(GraphSpecError, match=r"g: 1 problem\n  output: unknown field 'nope'"):
        raise_for_problems(graph(output="nope"))


# --- references -----------------------------------------------------------------------


def test_unknown_nodes_in_edges() -> None:
    only(
        graph(edges=[["START", "a", "b"], ["a", "END"]]),
        "edges[1].to",
        "the edge from 'a' leads to unknown node 'b' (nodes: a, END)",
    )
    found = problems(graph(edges=[["START", "a", "END"], {"from": "x", "to": "a"}]))
    assert found[0] == ("edges[2].from", "unknown node 'x' (nodes: START, a)")
    routed = {"from": "a", "on": "${out}", "to": {"y": "END", "n": "zz"}, "default": "qq"}
    assert [w for w, _ in problems(graph(edges=[["START", "a"], routed]))] == [
        "edges[1].to.n",
        "edges[1].default",
    ]


def test_edges_out_of_end_and_into_start() -> None:
    only(graph(edges=[["START", "a", "END", "a"]]), "edges[2].from", "no edge may leave END")
    only(
        graph(edges=[["START", "a", "END"], ["a", "START"]]),
        "edges[2].to",
        "cannot lead to START",
    )


def test_unknown_targets_of_on_error_and_on_exhausted() -> None:
    nodes = {"a": {"agent": {"task": "t"}, "on_error": "fix", "on_exhausted": "START"}}
    assert [w for w, _ in problems(graph(nodes=nodes))] == [
        "nodes.a.on_exhausted",
        "nodes.a.on_error",
    ]


def test_duplicate_edges() -> None:
    only(graph(edges=[["START", "a", "END"], ["a", "END"]]), "edges[2]", "duplicate of edges[1]")


def test_reserved_names() -> None:
    nodes = {"a": {"agent": {"task": "t"}}, "END": {"agent": {"task": "t"}}}
    assert ("nodes.END", "'END' is reserved: name the node otherwise") in problems(
        graph(nodes=nodes)
    )
    only(graph(state=STATE | {"result": {}}), "state.result", "reserved for expressions")
    only(graph(state=STATE | {"my-field": {}}), "state.my-field", "not a name expressions")


def test_output_names_a_field() -> None:
    assert validate(graph(output="out")) == []
    only(graph(output="outt"), "output", "unknown field 'outt' (fields: topic, notes, out")


# --- shape ----------------------------------------------------------------------------


def test_unreachable_nodes() -> None:
    nodes = {"a": {"agent": {"task": "t"}}, "b": {"agent": {"task": "t"}}}
    only(
        graph(nodes=nodes, edges=[["START", "a", "END"], ["b", "END"]]),
        "nodes.b",
        "unreachable from START",
    )


def test_no_edge_leaves_start() -> None:
    found = problems(graph(edges=[["a", "END"]]))
    assert [w for w, _ in found] == ["edges", "nodes.a"]
    assert "no edge leaves START" in found[0][1]


def test_nodes_with_no_way_to_end() -> None:
    nodes: dict[str, Any] = {"a": {"agent": {"task": "t"}}, "b": {"agent": {"task": "t"}}}
    only(graph(nodes=nodes, edges=[["START", "a", "END"], ["a", "b"]]), "nodes.b", "no path")
    # on_error and on_exhausted count as ways out
    nodes["b"]["on_error"] = "END"
    assert validate(graph(nodes=nodes, edges=[["START", "a", "END"], ["a", "b"]])) == []


def test_cycles_need_max_visits() -> None:
    nodes: dict[str, Any] = {"a": {"agent": {"task": "t"}}, "b": {"agent": {"task": "t"}}}
    edges = [["START", "a", "b", "a"], ["b", "END"]]
    only(graph(nodes=nodes, edges=edges), "nodes.a.max_visits", "nodes a, b form a cycle")
    nodes["b"]["max_visits"] = 2
    assert validate(graph(nodes=nodes, edges=edges)) == []


def test_every_cycle_needs_a_bound_not_only_one_per_loop() -> None:
    # a <-> b is bounded by a; b <-> c is not, though all three share one loop.
    nodes: dict[str, Any] = {n: {"agent": {"task": "t"}} for n in "abc"}
    nodes["a"]["max_visits"] = 3
    edges = [["START", "a", "b", "a"], ["b", "c", "b"], ["c", "END"]]
    only(graph(nodes=nodes, edges=edges), "nodes.b.max_visits", "nodes b, c form a cycle")


def test_a_self_loop_needs_max_visits() -> None:
    only(graph(edges=[["START", "a", "a", "END"]]), "nodes.a.max_visits", "nodes a form")


def test_parallel_branches_writing_a_last_field() -> None:
    nodes: dict[str, Any] = {
        "fork": {"agent": {"task": "t"}},
        "left": {"agent": {"task": "t"}, "writes": "out"},
        "right": {"agent": {"task": "t"}},
        "right2": {"agent": {"task": "t"}, "writes": {"out": "${result}", "notes": "${result}"}},
        "join": {"agent": {"task": "t"}, "writes": "out"},  # after both: no race
    }
    edges = [
        ["START", "fork", "left", "join", "END"],
        ["fork", "right", "right2", "join"],
    ]
    only(
        graph(nodes=nodes, edges=edges),
        "nodes.right2.writes.out",
        "'left' also writes 'out' (reducer last) in a parallel branch after 'fork'",
    )
    # An append field takes both writes.
    nodes["left"]["writes"] = "notes"
    assert validate(graph(nodes=nodes, edges=edges)) == []


def test_a_fan_out_from_start_is_checked_too() -> None:
    nodes: dict[str, Any] = {
        "x": {"agent": {"task": "t"}, "writes": "out"},
        "y": {"task": {"ref": "m:f"}},
    }
    nodes["y"]["writes"] = {"out": "${str(result)}"}
    edges = [["START", "x", "END"], ["START", "y", "END"]]
    only(graph(nodes=nodes, edges=edges), "nodes.y.writes.out", "after 'START'")


def test_routes_are_not_fan_outs() -> None:
    nodes = {
        "a": {"agent": {"task": "t"}},
        "b": {"agent": {"task": "t"}, "writes": "out"},
        "c": {"agent": {"task": "t"}, "writes": "out"},
    }
    route = {"from": "a", "on": "${topic}", "to": {"x": "b", "y": "c"}}
    spec = graph(nodes=nodes, edges=[["START", "a"], route, ["b", "END"], ["c", "END"]])
    assert validate(spec) == []


# --- routes ---------------------------------------------------------------------------


def route_graph(to: dict[str, str], on: str = "${verdict.decision}", **extra: Any) -> GraphSpec:
    """START -> a, then a routes on ``on`` (back to itself, bounded, or to END)."""
    edge = {"from": "a", "on": on, "to": to} | extra
    nodes = {"a": {"agent": {"task": "t"}, "max_visits": 2}}
    return graph(nodes=nodes, edges=[["START", "a"], edge])


def test_route_keys_match_the_values_on_can_take() -> None:
    assert validate(route_graph({"approve": "END", "revise": "a"})) == []
    found = problems(route_graph({"aprove": "END", "revise": "a"}))
    assert found == [
        ("edges[1].to.aprove", "never taken: 'on' is one of approve, revise"),
        ("edges[1].to", "no target for approve: add them or a default"),
    ]
    assert validate(route_graph({"revise": "a"}, default="END")) == []


def test_boolean_routes() -> None:
    assert validate(route_graph({"true": "END", "false": "a"}, on="${verdict.ok}")) == []
    only(route_graph({"true": "END"}, on="${verdict.ok}"), "edges[1].to", "no target for false")
    only(route_graph({"yes": "END"}, on="${len(topic) > 3}", default="a"), "edges[1].to.yes", "")


def test_on_must_be_an_expression() -> None:
    only(route_graph({"x": "END"}, on="verdict.decision", default="a"), "edges[1].on", "constant")


# --- expressions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "where", "fragment"),
    [
        ({"agent": {"task": "${topik}"}}, "nodes.a.agent.task", "did you mean 'topic'?"),
        (
            {"agent": {"task": "t", "system_prompt": "${x}"}},
            "nodes.a.agent.system_prompt",
            "unknown field 'x'",
        ),
        ({"gate": {"prompt": "${topic"}}, "nodes.a.gate.prompt", "never closed"),
        ({"gate": {"prompt": "p", "show": "${verdict.note}"}}, "nodes.a.gate.show", "no field"),
        (
            {"task": {"ref": "m:f", "args": {"x": ["${nope}"]}}},
            "nodes.a.task.args.x[0]",
            "unknown field 'nope'",
        ),
        ({"agent": {"task": "${result}"}}, "nodes.a.agent.task", "only defined in a node's writes"),
        ({"agent": {"task": "${item}"}}, "nodes.a.agent.task", "only defined inside a map's node"),
        ({"agent": {"task": "${visits.b}"}}, "nodes.a.agent.task", "'visits' has no field 'b'"),
        (
            {"agent": {"task": "t"}, "writes": {"out": "${result.x}"}},
            "nodes.a.writes.out",
            "'result' is a string, not an object",
        ),
        (
            {"agent": {"task": "t"}, "writes": {"meta": {"k": ["${nope}"]}}},
            "nodes.a.writes.meta.k[0]",
            "unknown field 'nope'",
        ),
        (
            {"map": {"over": "${notes}", "node": {"agent": {"task": "${itm}"}}}},
            "nodes.a.map.node.agent.task",
            "did you mean 'item'?",
        ),
    ],
)
def test_templates_are_checked_where_they_are(node: Any, where: str, fragment: str) -> None:
    only(graph(nodes={"a": node}), where, fragment)


def test_good_templates_in_every_place() -> None:
    nodes = {
        "a": {"agent": {"task": "${topic} ${visits.a}", "system_prompt": "on ${topic}"}},
        "g": {
            "gate": {"prompt": "${len(notes)} notes", "show": "${verdict.decision}"},
            "writes": {"verdict": "${result}", "meta": {"from": "${visits.g}"}},
        },
        "m": {
            "map": {"over": "${notes}", "node": {"task": {"ref": "m:f", "args": {"i": "${item}"}}}},
            "writes": {"notes": "${result}"},
        },
    }
    assert validate(graph(nodes=nodes, edges=[["START", "a", "g", "m", "END"]])) == []


def test_writes() -> None:
    only(
        graph(nodes={"a": {"agent": {"task": "t"}, "writes": "nope"}}),
        "nodes.a.writes.nope",
        "unknown field 'nope'",
    )
    only(
        graph(nodes={"a": {"agent": {"task": "t"}, "writes": {"out": "${len(topic)}"}}}),
        "nodes.a.writes.out",
        "writes an integer to 'out', a field of type string",
    )
    only(
        graph(nodes={"a": {"agent": {"task": "t"}, "writes": "meta"}}),
        "nodes.a.writes.meta",
        "writes a string to 'meta', a field of type object",
    )


# --- bodies ---------------------------------------------------------------------------


def test_map_over_must_give_a_list() -> None:
    inner = {"agent": {"task": "${item}"}}
    only(graph(nodes={"a": {"map": {"over": "${topic}", "node": inner}}}), "nodes.a.map.over", "")
    only(
        graph(nodes={"a": {"map": {"over": "list: ${notes}", "node": inner}}}),
        "nodes.a.map.over",
        "without text around",
    )


def test_map_runs_an_agent_or_a_task() -> None:
    for inner in (
        {"gate": {"prompt": "p"}},
        {"map": {"over": "${notes}", "node": {"agent": {"task": "t"}}}},
    ):
        only(
            graph(nodes={"a": {"map": {"over": "${notes}", "node": inner}}}),
            "nodes.a.map.node",
            "a map runs an agent or a task",
        )


def test_settings_inside_a_map_node_that_would_be_ignored() -> None:
    inner = {"agent": {"task": "t"}, "writes": "out", "max_visits": 2}
    found = problems(graph(nodes={"a": {"map": {"over": "${notes}", "node": inner}}}))
    assert [w for w, _ in found] == ["nodes.a.map.node.writes", "nodes.a.map.node.max_visits"]


def test_task_refs() -> None:
    node = {"a": {"task": {"ref": "tools:summarize"}}}
    assert validate(graph(nodes=node), known_tasks={"tools:summarize"}) == []
    assert validate(graph(nodes=node)) == []  # nothing to look up in
    only(graph(nodes=node), "nodes.a.task.ref", "registered: tools:other", {"tools:other"})
    only(graph(nodes={"a": {"task": {"ref": "summarize"}}}), "nodes.a.task.ref", "module:function")


@pytest.mark.parametrize(
    ("parts", "where"),
    [
        (
            {"nodes": {"a": {"gate": {"prompt": "p", "deadline": "2 days"}}}},
            "nodes.a.gate.deadline",
        ),
        ({"nodes": {"a": {"agent": {"task": "t"}, "timeout": "10x"}}}, "nodes.a.timeout"),
        (
            {"nodes": {"a": {"agent": {"task": "t", "max_duration": -1}}}},
            "nodes.a.agent.max_duration",
        ),
        ({"defaults": {"timeout": "soon"}}, "defaults.timeout"),
    ],
)
def test_invalid_durations(parts: dict[str, Any], where: str) -> None:
    only(graph(**parts), where, "invalid duration")


def test_json_schemas() -> None:
    output = {
        "type": "object",
        "properties": {"a": {"type": "strng"}, "b": {"items": {"type": ["string", "nul"]}}},
        "required": ["a", "c"],
        "enum": [],
    }
    found = problems(graph(nodes={"a": {"agent": {"task": "t", "output": output}}}))
    assert [w for w, _ in found] == [
        "nodes.a.agent.output.properties.a.type",
        "nodes.a.agent.output.properties.b.items.type",
        "nodes.a.agent.output.required",
        "nodes.a.agent.output.enum",
    ]
    assert "'strng' is not a JSON type" in found[0][1]
    only(
        graph(state=STATE | {"xs": {"type": "array", "items": {"type": "text"}}}),
        "state.xs.items.type",
        "'text' is not a JSON type",
    )


def test_gate_on_timeout_must_be_a_valid_answer() -> None:
    answer = {
        "type": "object",
        "properties": {"decision": {"enum": ["approve", "revise"]}},
        "required": ["decision"],
    }

    def gate(on_timeout: Any) -> GraphSpec:
        body = {"prompt": "p", "answer": answer, "on_timeout": on_timeout}
        return graph(nodes={"a": {"gate": body}})

    assert validate(gate({"decision": "approve"})) == []
    only(gate({"decision": "maybe"}), "nodes.a.gate.on_timeout", "decision: 'maybe' is not one of")
    only(gate({}), "nodes.a.gate.on_timeout", "'decision' is required")
    only(gate("approve"), "nodes.a.gate.on_timeout", "string is not of type object")


def test_reducers_suit_their_field_type() -> None:
    only(
        graph(state=STATE | {"m": {"type": "array", "reducer": "merge"}}),
        "state.m.reducer",
        "merge needs type object",
    )
    only(
        graph(state=STATE | {"s": {"type": "string", "reducer": "append"}}),
        "state.s.reducer",
        "append needs type array",
    )
    assert validate(graph(state=STATE | {"x": {"reducer": "append"}})) == []  # type any


def test_field_defaults_fit_their_type() -> None:
    only(
        graph(state=STATE | {"n": {"type": "integer", "default": "3"}}),
        "state.n.default",
        "string is not of type integer",
    )
    assert validate(graph(state=STATE | {"n": {"type": "number", "default": 3}})) == []


def test_a_graph_needs_nodes() -> None:
    assert [w for w, _ in problems(graph(nodes={}, edges=[["START", "END"]]))] == ["nodes"]


def test_inline_subgraphs_are_validated_with_their_own_scope() -> None:
    child = {
        "graph": "child",
        "state": {"q": {"type": "string"}, "answer": {"type": "string"}},
        "nodes": {"ask": {"agent": {"task": "${q} ${topic}"}, "writes": "answer"}},
        "edges": [["START", "ask", "END"]],
    }
    sub = {
        "spec": child,
        "input": {"q": "${topic}", "nope": 1, "bad": "${missing}"},
        "output": {"text": "${answer}", "wrong": "${out}"},
    }
    found = problems(graph(nodes={"a": {"graph": sub, "writes": {"out": "${result.text}"}}}))
    assert [w for w, _ in found] == [
        "nodes.a.graph.input.bad",
        "nodes.a.graph.spec.nodes.ask.agent.task",  # the parent's fields are not the child's
        "nodes.a.graph.input.nope",
        "nodes.a.graph.input.bad",
        "nodes.a.graph.output.wrong",
    ]
    file_node = {"a": {"graph": {"file": "child.yaml"}, "writes": {"out": "${str(result)}"}}}
    assert validate(graph(nodes=file_node)) == []
