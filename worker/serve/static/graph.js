// One graph run: its nodes drawn with their states, the open gates with answer forms, the
// questions of its agents (answered on their pages), cancel.

import { api, follow } from "./api.js";
import { badge, debounce, facts, field, fill, h, latestOnly } from "./dom.js";
import { report, send } from "./app.js";
import { drawGraph } from "./drawing.js";

/** Draw graph `id` into `main`; returns what stops following it. */
export function showGraph(main, id) {
  const path = `/graphs/${encodeURIComponent(id)}`;
  const view = {
    status: h("div", { class: "status", "aria-live": "polite" }),
    drawing: h("figure", { class: "drawing" }),
    nodes: h("tbody"),
    gates: h("section", { "aria-labelledby": "gates-title" }),
    begin: latestOnly(),
  };
  const table = h("table", {}, h("caption", {}, "Nodes"),
    h("thead", {}, h("tr", {}, ["Node", "Kind", "Status", "Visits", "Runs"].map((c) => h("th", { scope: "col" }, c)))),
    view.nodes);
  const cancel = h("form", { class: "live", onsubmit: async (e) => {
    e.preventDefault();
    await send(`${path}/cancel`, {}, () => refresh());
  } }, h("button", { type: "submit", class: "danger" }, "Cancel the graph"));
  fill(main, h("h1", {}, "Graph ", h("code", {}, id)), view.status, view.gates, view.drawing, table, cancel);
  const refresh = debounce(() => load(path, view, main), 200);
  const stop = follow("graphs", id, () => refresh(), (end) => {
    if (end.reason === "error") report(`Live events stopped: ${end.error}`);
    refresh();
  });
  load(path, view, main);
  return stop;
}

async function load(path, view, main) {
  const current = view.begin(); // only the latest load draws: answers arrive out of order
  let run, pending;
  try {
    [run, pending] = await Promise.all([api(path), api(`${path}/pending`)]);
  } catch (error) {
    return report(error);
  }
  if (!current()) return;
  const states = new Map((run.nodes || []).map((n) => [n.name, n]));
  main.querySelectorAll(".live").forEach((el) => { el.hidden = run.execution_status !== "running"; });
  fill(view.status, badge(run.status), facts([
    ["Name", run.graph.name], ["Step", run.step], ["Error", run.error], ["Details", run.details],
  ]));
  fill(view.drawing, drawGraph(run.graph, states),
    h("figcaption", {}, "Each node shows its kind, status and visits."));
  fill(view.nodes, run.graph.nodes.map((n) => {
    const s = states.get(n.name) || { status: "pending", visits: 0, children: [] };
    return h("tr", {}, h("th", { scope: "row" }, n.name), h("td", {}, n.kind), h("td", {}, badge(s.status)),
      h("td", {}, s.visits),
      h("td", {}, (s.children || []).map((c) => h("a", { href: childLink(n.kind, c) }, c, " "))));
  }));
  drawGates(view.gates, pending, () => load(path, view, main));
}

function childLink(kind, id) {
  // A graph node's children are graphs; an agent's (or a map of agents') are agents.
  return `#/${kind.endsWith("graph") ? "graphs" : "agents"}/${encodeURIComponent(id)}`;
}

function drawGates(el, pending, done) {
  const gates = pending.gates || [];
  const asks = [...(pending.questions || []), ...(pending.approvals || [])];
  const key = [...gates.map((g) => `${g.graph}:${g.id}`), ...asks.map((a) => `${a.send_to}:${a.id}`)].join("|");
  if (el.dataset.key === key) return; // a person may be typing an answer
  el.dataset.key = key;
  if (!gates.length && !asks.length) return fill(el);
  fill(el, h("h2", { id: "gates-title" }, "Waiting for you"),
    gates.map((gate) => gateForm(gate, done)),
    asks.map((a) => h("p", { class: "card" }, `${a.kind} ${a.id} of agent `,
      h("a", { href: `#/agents/${encodeURIComponent(a.send_to)}` }, a.send_to),
      `: ${a.question ? a.question.question : a.approval.tool}`)));
}

function gateForm(gate, done) {
  const answer = h("textarea", { name: "answer", rows: 3, required: true }, example(gate.answer_schema));
  return h("form", { class: "card gate", onsubmit: async (e) => {
    e.preventDefault();
    let value;
    try {
      value = JSON.parse(answer.value);
    } catch {
      return report("The answer must be JSON (text in quotes: \"yes\").");
    }
    await send(`/graphs/${encodeURIComponent(gate.graph)}/decide`, { gate_id: gate.id, answer: value }, done);
  } },
  h("h3", {}, "Gate ", h("code", {}, gate.id)),
  h("p", {}, gate.prompt),
  shown(gate.show),
  gate.answer_schema ? h("details", {}, h("summary", {}, "Answer schema"), h("pre", {}, JSON.stringify(gate.answer_schema, null, 2))) : null,
  field("Answer (JSON)", answer),
  h("button", { type: "submit" }, "Decide"));
}

function shown(value) {
  if (value === null || value === undefined) return null;
  return h("pre", { class: "shown" }, typeof value === "string" ? value : JSON.stringify(value, null, 2));
}

function example(schema) {
  // A start for the person: the first allowed value of each required property.
  if (!schema || schema.type !== "object" || !schema.properties) return "";
  const out = {};
  for (const name of schema.required || Object.keys(schema.properties)) {
    const p = schema.properties[name] || {};
    out[name] = p.enum ? p.enum[0] : p.type === "boolean" ? true : p.type === "string" ? "" : null;
  }
  return JSON.stringify(out);
}
