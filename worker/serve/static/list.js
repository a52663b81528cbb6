// The first page: agents and graphs from Temporal visibility, with status and owner filters.

import { api } from "./api.js";
import { badge, field, fill, h } from "./dom.js";
import { report } from "./app.js";

const AGENT_STATUSES = [
  "running", "waiting_user", "waiting_approval", "waiting_provider", "completed", "failed",
  "cancelled", "max_cycles", "budget_exceeded", "terminated", "timed_out",
];
const GRAPH_STATUSES = ["running", "waiting_user", "completed", "failed", "cancelled",
  "terminated", "timed_out"];
const REFRESH_MS = 5000;

/** Draw the lists into `main`; returns what stops their refreshing. */
export function showList(main) {
  const agents = listing("agents", "Agents", AGENT_STATUSES, agentRow, ["Agent", "Status", "Model", "Owner", "Started"]);
  const graphs = listing("graphs", "Graphs", GRAPH_STATUSES, graphRow, ["Graph", "Name", "Status", "Owner", "Started"]);
  fill(main, h("h1", {}, "Agents and graphs"), startForm(), agents.section, graphs.section);
  const timer = setInterval(() => { agents.load(); graphs.load(); }, REFRESH_MS);
  agents.load();
  graphs.load();
  return () => clearInterval(timer);
}

function listing(kind, title, statuses, row, columns) {
  const status = h("select", { name: "status" },
    h("option", { value: "" }, "any"), statuses.map((s) => h("option", { value: s }, s)));
  const owner = h("input", { name: "owner", type: "text", placeholder: "anyone" });
  const body = h("tbody");
  const count = h("p", { class: "muted", "aria-live": "polite" });
  const load = async () => {
    const query = new URLSearchParams({ limit: "100" });
    if (status.value) query.set("status", status.value);
    if (owner.value.trim()) query.set("owner", owner.value.trim());
    try {
      const rows = (await api(`/${kind}?${query}`))[kind];
      fill(body, rows.map(row));
      count.textContent = `${rows.length} ${kind}`;
    } catch (error) {
      report(error);
    }
  };
  const filters = h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); load(); } },
    field("Status", status), field("Owner", owner), h("button", { type: "submit" }, "Filter"));
  const table = h("table", {},
    h("caption", { class: "sr-only" }, title),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    body);
  const section = h("section", { "aria-labelledby": `${kind}-title` },
    h("h2", { id: `${kind}-title` }, title), filters, count, table);
  return { section, load };
}

function agentRow(a) {
  return h("tr", {},
    h("td", {}, h("a", { href: `#/agents/${encodeURIComponent(a.id)}` }, a.id)),
    h("td", {}, badge(a.status)), h("td", {}, a.model), h("td", {}, a.owner || ""),
    h("td", {}, h("time", { datetime: a.started }, a.started)));
}

function graphRow(g) {
  return h("tr", {},
    h("td", {}, h("a", { href: `#/graphs/${encodeURIComponent(g.id)}` }, g.id)),
    h("td", {}, g.graph), h("td", {}, badge(g.status)), h("td", {}, g.owner || ""),
    h("td", {}, h("time", { datetime: g.started }, g.started)));
}

function startForm() {
  const task = h("textarea", { name: "task", rows: 3, required: true });
  const model = h("input", { name: "model", type: "text", placeholder: "the server's default" });
  const owner = h("input", { name: "owner", type: "text", placeholder: "the server's default" });
  const submit = async (e) => {
    e.preventDefault();
    const body = { task: task.value };
    if (model.value.trim()) body.model = model.value.trim();
    if (owner.value.trim()) body.owner = owner.value.trim();
    try {
      const started = await api("/agents", { method: "POST", body });
      location.hash = `#/agents/${encodeURIComponent(started.id)}`;
    } catch (error) {
      report(error);
    }
  };
  return h("details", { class: "card" }, h("summary", {}, "Start an agent"),
    h("form", { onsubmit: submit }, field("Task", task), field("Model", model),
      field("Owner", owner), h("button", { type: "submit" }, "Start")));
}
