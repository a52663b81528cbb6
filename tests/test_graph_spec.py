"""Graph specs: the models, loading YAML/JSON, the Python builder, fingerprints, reducers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from duragent.workflows.graph_expr import ExpressionError
from duragent.workflows.graph_load import Graph, GraphSpecError, load_graph
from duragent.workflows.graph_spec import (
    END,
    START,
    AgentNodeSpec,
    Edge,
    GraphSpec,
    MapErrorMode,
    Node,
    NodeKind,
    NodePolicy,
    Reducer,
    StateField,
    TaskNodeSpec,
    effective_policy,
    parse_duration,
)
from duragent.workflows.graph_state import StateError, apply_writes, initial_state, reduce
from duragent.workflows.graph_validate import validate

REPORT = Path(__file__).parent.parent / "examples" / "graphs" / "report.yaml"
SECTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"sections": {"type": "array", "items": {"type": "string"}}},
}
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"decision": {"enum": ["approve", "revise"]}, "note": {"type": "string"}},
    "required": ["decision"],
}


def report() -> GraphSpec:
    return load_graph(REPORT.read_text(), source=str(REPORT))


def built_report() -> GraphSpec:
    return (
        Graph("report")
        .state(topic=str, sections=(list, "append"), verdict=dict, draft=str)
        .agent(
            "plan",
            task="List the sections of a report on ${topic}",
            output=SECTIONS_SCHEMA,
            writes={"sections": "${result.sections}"},
        )
        .map(
            "write",
            over="${sections}",
            node=AgentNodeSpec(task="Write the section ${item}"),
            concurrency=4,
            writes={"draft": "${join(result, '\n\n')}"},
        )
        .gate(
            "review",
            prompt="Approve the draft?",
            show="${draft}",
            answer=ANSWER_SCHEMA,
            deadline="48h",
            on_timeout={"decision": "approve"},
            writes="verdict",
            max_visits=3,
            on_exhausted=END,
        )
        .edge(START, "plan", "write", "review")
        .route("review", on="${verdict.decision}", to={"approve": END, "revise": "write"})
        .build()
    )


def problems_of(text: str) -> dict[str, str]:
    with pytest.raises(GraphSpecError) as caught:
        load_graph(text)
    return {p.where: p.message for p in caught.value.problems}


# --- the example and the builder ------------------------------------------------------


def test_the_example_loads_and_validates_clean() -> None:
    spec = report()
    assert validate(spec) == []
    assert spec.name == "report"
    assert list(spec.nodes) == ["plan", "write", "review"]
    assert [(e.from_, e.to) for e in spec.edges[:3]] == [
        (START, "plan"),
        ("plan", "write"),
        ("write", "review"),
    ]
    review = spec.nodes["review"]
    assert review.kind is NodeKind.GATE
    assert review.writes == {"verdict": "${result}"}  # the field-name shorthand
    assert review.gate is not None and review.gate.deadline_seconds == 48 * 3600
    route = spec.edges[3]
    assert route.on == "${verdict.decision}"  # `on` stays a key, not YAML 1.1's true
    assert route.target_for("revise") == "write"
    assert spec.nodes["write"].map is not None
    assert spec.nodes["write"].map.node.kind is NodeKind.AGENT
    assert spec.nodes["write"].writes == {"draft": "${join(result, '\n\n')}"}
    assert spec.state["sections"].reducer is Reducer.APPEND


def test_the_builder_makes_the_same_spec_as_the_yaml() -> None:
    built, loaded = built_report(), report()
    assert built == loaded
    assert built.fingerprint() == loaded.fingerprint()


def test_json_text_and_a_parsed_mapping_load_the_same_spec() -> None:
    data = yaml.safe_load(REPORT.read_text())
    data["edges"][1]["on"] = data["edges"][1].pop(True)  # what YAML 1.1 made of `on`
    assert load_graph(json.dumps(data)) == report()
    assert load_graph(data) == report()


def test_a_yaml_1_1_on_key_in_a_parsed_mapping_still_means_on() -> None:
    data = yaml.safe_load(REPORT.read_text())
    assert True in data["edges"][1]  # PyYAML's safe_load reads `on:` as true
    assert load_graph(data).edges[3].on == "${verdict.decision}"


def test_json_loads_without_pyyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = report()
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml now raises ImportError
    assert load_graph(spec.model_dump_json(by_alias=True)) == spec
    with pytest.raises(GraphSpecError, match="reading YAML needs PyYAML"):
        load_graph(REPORT.read_text())
    with pytest.raises(GraphSpecError, match=r"line 1, column 2: Expecting property name"):
        load_graph("{graph: x}")


# --- fingerprints ---------------------------------------------------------------------


def test_fingerprint_is_stable_across_key_order_and_explicit_defaults() -> None:
    data = yaml.load(REPORT.read_text(), Loader=yaml.BaseLoader)  # all strings: no `on` trap
    data["nodes"]["review"]["max_visits"] = 3
    data["nodes"]["write"]["map"]["concurrency"] = 4
    reordered = {key: data[key] for key in reversed(list(data))}
    reordered["nodes"] = {key: data["nodes"][key] for key in reversed(list(data["nodes"]))}
    reordered["state"]["topic"] = {"reducer": "last", "type": "string"}  # a default, said
    assert load_graph(reordered).fingerprint() == report().fingerprint()
    assert len(report().fingerprint()) == 64


def test_fingerprint_differs_for_different_specs() -> None:
    base = report()
    variants = [
        base.model_copy(update={"name": "report2"}),
        load_graph(REPORT.read_text().replace("Approve the draft?", "Approve?")),
        load_graph(REPORT.read_text().replace("concurrency: 4", "concurrency: 5")),
        load_graph(REPORT.read_text().replace("max_visits: 3", "max_visits: 2")),
    ]
    prints = {spec.fingerprint() for spec in variants}
    assert len(prints) == len(variants)
    assert base.fingerprint() not in prints


# --- loading errors -------------------------------------------------------------------


def test_structural_problems_are_reported_together_where_they_are() -> None:
    found = problems_of(
        """
        graph: x
        state: {a: {type: strng, reduce: append}}
        nodes:
          n: {agent: {task: 1}}
          m: {gate: {}, max_visits: 0}
          k: {agent: {task: t}, task: {ref: "m:f"}}
          e: {}
        edges:
          - [START, n, m]
          - {from: n, to: {a: m}}
          - {from: n, to: 5}
          - [START]
        """
    )
    assert set(found) == {
        "state.a.type",
        "state.a.reduce",
        "nodes.n.agent.task",
        "nodes.m.gate.prompt",
        "nodes.m.max_visits",
        "nodes.k",
        "nodes.e",
        "edges[1]",
        "edges[2].to",  # the third edge as written, though the chain made two
        "edges[3]",
    }
    assert found["state.a.reduce"] == "unknown key: did you mean 'reducer'?"
    assert found["nodes.m.gate.prompt"] == "required"
    assert "exactly one of agent, task, gate, map, graph; found agent, task" in found["nodes.k"]
    assert "found none" in found["nodes.e"]
    assert found["edges[1]"] == "an edge with several targets needs 'on' to choose one"
    assert found["edges[2].to"] == ("Input should be a valid string or a valid dictionary")
    assert "a chain is a list of at least two node names" in found["edges[3]"]


def test_chains_in_inline_child_graphs_expand_and_problems_point_at_them() -> None:
    child: dict[str, Any] = {"graph": "c", "nodes": {"t": {"task": {"ref": "m:f"}}}}
    parent = {
        "graph": "p",
        "nodes": {"s": {"graph": {"spec": child}}},
        "edges": [["START", "s", "END"]],
    }
    child["edges"] = [["START", "t", "END"]]
    inner = load_graph(parent).nodes["s"].graph
    assert inner is not None and inner.spec is not None
    assert [(e.from_, e.to) for e in inner.spec.edges] == [(START, "t"), ("t", END)]
    child["edges"] = [["START", "t", "END"], {"from": "t", "to": 5}, ["t"]]
    with pytest.raises(GraphSpecError) as caught:
        load_graph(parent)
    assert {p.where for p in caught.value.problems} == {
        "nodes.s.graph.spec.edges[2]",
        "nodes.s.graph.spec.edges[1].to",
    }


def test_a_missing_name_and_a_wrong_top_level() -> None:
    assert problems_of("nodes: {}") == {"graph": "required"}
    assert problems_of("- a\n- b") == {"": "a graph is a mapping with graph, state, nodes, edges"}


def test_yaml_errors_name_the_line() -> None:
    assert problems_of("graph: x\nnodes: {a: 1}\nnodes: {}\n") == {
        "line 3, column 1": "duplicate key 'nodes'"
    }
    found = problems_of("graph: x\nnodes: [1\n")
    assert list(found) == ["line 3, column 1"]


def test_yaml_reads_json_values_only() -> None:
    spec = load_graph(
        """
        graph: x
        state: {when: {type: string, default: 2024-01-01}, yes_no: {default: no}}
        nodes: {a: {task: {ref: "m:f", args: {on: yes, off: false}}}}
        edges: [[START, a, END]]
        """
    )
    assert spec.state["when"].default == "2024-01-01"  # not a date
    assert spec.state["yes_no"].default == "no"  # not false
    assert spec.nodes["a"].task == TaskNodeSpec(ref="m:f", args={"on": "yes", "off": False})


def test_builder_reports_every_problem_at_build() -> None:
    graph = (
        Graph("g")
        .state(a=set)
        .agent("n", task="t")
        .agent("n", task="u")
        .gate("g", prompt="p", max_visits=0)
        .edge("n")
    )
    with pytest.raises(GraphSpecError) as caught:
        graph.build()
    assert {p.where for p in caught.value.problems} == {
        "state.a",
        "nodes.n",
        "edges[0]",
        "nodes.g.max_visits",
    }


def test_builder_covers_every_node_kind_and_defaults() -> None:
    child = Graph("child").state(x=int).task("t", ref="m:f").edge(START, "t", END).build()
    spec = (
        Graph("all", description="every kind")
        .state(items=(list, "append"), meta=(dict, "merge"), out=object, n=float, ok=bool)
        .task("t", ref="pkg.mod:fn", args={"n": "${n}"}, max_attempts=2, timeout="30s")
        .map(
            "m",
            over="${items}",
            node=TaskNodeSpec(ref="m:f", args={"x": "${item}"}),
            on_error_mode="collect",
            writes="items",
        )
        .subgraph(
            "s", spec=child, input={"x": 1}, output={"x": "${x}"}, writes={"meta": "${result}"}
        )
        .edge(START, "t", "m", "s", END)
        .output("items")
        .defaults(NodePolicy(model="p:big"), max_cycles=7)
        .build()
    )
    assert validate(spec) == []
    assert spec.description == "every kind"
    assert spec.state["out"].type == "any" and spec.state["n"].type == "number"
    assert spec.state["meta"].reducer is Reducer.MERGE
    assert spec.nodes["m"].map is not None
    assert spec.nodes["m"].map.on_error is MapErrorMode.COLLECT
    assert spec.nodes["s"].graph is not None and spec.nodes["s"].graph.spec == child
    assert spec.defaults == NodePolicy(model="p:big", max_cycles=7)
    assert spec.policy("t") == NodePolicy(
        model="p:big", max_cycles=7, max_attempts=2, timeout="30s"
    )


# --- the models -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("48h", 172_800),
        ("30m", 1_800),
        ("10s", 10),
        ("2d", 172_800),
        ("1w", 604_800),
        ("1h30m", 5_400),
        ("500ms", 0.5),
        ("90", 90),
        (" 1.5h ", 5_400),
        (45, 45),
        (0.25, 0.25),
    ],
)
def test_durations(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["48x", "h", "", "-5s", "0", 0, -1, "1h 30m", "5" * 40, True])
def test_invalid_durations(value: Any) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)


def test_a_spec_is_frozen_and_refuses_unknown_keys() -> None:
    spec = report()
    with pytest.raises(ValidationError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs"):
        StateField.model_validate({"type": "string", "reduce": "append"})


def test_edges_route_by_text_keys() -> None:
    edge = Edge.model_validate({"from": "a", "on": "${ok}", "to": {True: "b", "1": "c"}})
    assert edge.to == {"true": "b", "1": "c"}
    assert edge.target_for(True) == "b"
    assert edge.target_for(1) == "c"
    assert edge.target_for("other") is None
    with_default = Edge(from_="a", on="${x}", to={"y": "b"}, default="d")
    assert with_default.target_for("z") == "d"
    assert with_default.targets() == ["b", "d"]
    assert Edge(from_="a", to="b").target_for("anything") == "b"
    with pytest.raises(ValidationError, match="'on' and 'default' need 'to' as a mapping"):
        Edge(from_="a", to="b", on="${x}")


def test_effective_policy_layers_defaults_node_and_agent() -> None:
    defaults = NodePolicy(model="p:default", max_attempts=3, timeout="1m")
    outer = Node.model_validate(
        {"map": {"over": "${x}", "node": {"agent": {"task": "t"}}}, "model": "p:map"}
    )
    assert outer.map is not None
    inner = Node.model_validate({"agent": {"task": "t", "max_cycles": 5}, "timeout": "2m"})
    policy = effective_policy(defaults, outer, inner)
    assert policy == NodePolicy(model="p:map", max_attempts=3, timeout="2m", max_cycles=5)
    assert policy.timeout_seconds == 120
    assert effective_policy(defaults) == defaults


def test_state_field_initial_values() -> None:
    assert StateField(reducer=Reducer.APPEND).initial() == []
    assert StateField(reducer=Reducer.MERGE).initial() == {}
    assert StateField().initial() is None
    assert StateField(default="x").initial() == "x"
    assert StateField(type="array", items={"type": "string"}).json_schema() == {
        "type": "array",
        "items": {"type": "string"},
    }


# --- reducers -------------------------------------------------------------------------

FIELDS = {
    "last": StateField(),
    "items": StateField(type="array", reducer=Reducer.APPEND),
    "meta": StateField(type="object", reducer=Reducer.MERGE),
}


def test_reducers_last_append_merge() -> None:
    state: dict[str, Any] = {"last": 1, "items": ["a"], "meta": {"x": 1, "y": {"deep": 1}}}
    new = reduce(FIELDS, state, {"last": 2, "items": ["b", "c"], "meta": {"y": {"other": 2}}})
    assert new == {"last": 2, "items": ["a", "b", "c"], "meta": {"x": 1, "y": {"other": 2}}}
    assert reduce(FIELDS, new, {"items": "d"})["items"] == ["a", "b", "c", "d"]
    assert reduce(FIELDS, new, {"items": {"k": 1}})["items"][-1] == {"k": 1}
    assert reduce(FIELDS, new, {"last": None})["last"] is None
    # nothing changed in place
    assert state == {"last": 1, "items": ["a"], "meta": {"x": 1, "y": {"deep": 1}}}


def test_reducer_errors() -> None:
    with pytest.raises(StateError, match="field 'meta' merges objects, but the write is array"):
        reduce(FIELDS, {}, {"meta": [1]})
    with pytest.raises(StateError, match="write to unknown field 'nope'"):
        reduce(FIELDS, {}, {"nope": 1})


def test_apply_writes_of_the_report() -> None:
    spec = report()
    state = initial_state(spec, {"topic": "tides"})
    assert state == {"topic": "tides", "sections": [], "verdict": None, "draft": None}
    state = apply_writes(spec, state, spec.nodes["plan"], {"sections": ["Intro", "Moon"]})
    assert state["sections"] == ["Intro", "Moon"]
    # a map's results, in item order, joined by its write
    state = apply_writes(spec, state, spec.nodes["write"], ["About tides.", "The moon."])
    assert state["draft"] == "About tides.\n\nThe moon."
    state = apply_writes(spec, state, spec.nodes["review"], {"decision": "revise"})
    assert state["verdict"] == {"decision": "revise"}
    assert spec.edges[3].target_for(state["verdict"]["decision"]) == "write"


def test_apply_writes_appends_map_results_in_item_order_and_sees_visits() -> None:
    spec = (
        Graph("g")
        .state(found=(list, "append"), note=str)
        .map(
            "m",
            over="${found}",
            node=AgentNodeSpec(task="${item}"),
            writes={"found": "${result}", "note": "round ${visits.m}"},
        )
        .edge(START, "m", END)
        .build()
    )
    state = apply_writes(
        spec, {"found": ["x"], "note": None}, spec.nodes["m"], ["a", "b"], visits={"m": 2}
    )
    assert state == {"found": ["x", "a", "b"], "note": "round 2"}


def test_apply_writes_errors() -> None:
    spec = report()
    with pytest.raises(ExpressionError, match="'result' has no field 'sections'"):
        apply_writes(spec, initial_state(spec), spec.nodes["plan"], {"other": 1})
    with pytest.raises(StateError, match="input names unknown fields nope"):
        initial_state(spec, {"nope": 1})


def test_initial_state_copies_defaults() -> None:
    spec = Graph("g").state(a={"type": "array", "default": [1]}).task("t", ref="m:f").build()
    first = initial_state(spec)
    first["a"].append(2)
    assert initial_state(spec)["a"] == [1]
