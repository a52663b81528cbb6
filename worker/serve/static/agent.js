// One agent: its live transcript, status, what it waits on (question, approvals), todos,
// usage, and the forms that answer, steer and cancel it.

import { api, follow } from "./api.js";
import { badge, debounce, facts, field, fill, h, latestOnly } from "./dom.js";
import { report, send } from "./app.js";
import { Transcript } from "./transcript.js";

const PAGE = 500;

/** Draw agent `id` into `main`; returns what stops following it. */
export function showAgent(main, id) {
  const path = `/agents/${encodeURIComponent(id)}`;
  const view = {
    status: h("div", { class: "status", "aria-live": "polite" }),
    waiting: h("section", { "aria-labelledby": "waiting-title", class: "waiting" }),
    todos: h("ul", { class: "todos" }),
    usage: h("div"),
    transcript: new Transcript(),
    begin: latestOnly(),
  };
  fill(main,
    h("h1", {}, "Agent ", h("code", {}, id)),
    view.status,
    h("div", { class: "columns" },
      h("section", { "aria-labelledby": "transcript-title", class: "wide" },
        h("h2", { id: "transcript-title" }, "Transcript"), view.transcript.list),
      h("aside", {},
        view.waiting,
        section("Steer", steerForm(path), "live"),
        section("Todos", view.todos),
        section("Usage", view.usage),
        section("Cancel", cancelForm(path), "live"))));
  const refresh = debounce(() => refreshPanels(path, view), 200);
  let stop = () => {};
  loadTranscript(path, view.transcript).then(() => {
    stop = follow("agents", id, (event) => onEvent(event, view, path, refresh), (end) => {
      if (end.reason === "error") report(`Live events stopped: ${end.error}`);
      refresh();
    });
  });
  refreshPanels(path, view);
  return () => stop();
}

function section(title, content, className) {
  const id = `s-${title.toLowerCase()}`;
  return h("section", { "aria-labelledby": id, class: className }, h("h2", { id }, title), content);
}

function onEvent(event, view, path, refresh) {
  if (event.type === "token") return view.transcript.token(event);
  if (event.type === "status" && view.last) {
    // Shown at once; the refresh that follows brings the rest of the status.
    const { status, cycle, waiting_for } = event;
    drawStatus(view.status, { ...view.last, status, cycle, waiting_for });
  }
  if (event.type === "message" && event.message) view.transcript.message(event.index, event.message);
  if (event.type === "compaction") {
    view.transcript.clear();
    loadTranscript(path, view.transcript);
  }
  refresh();
}

async function loadTranscript(path, transcript) {
  try {
    for (let offset = 0; ; offset += PAGE) {
      const page = await api(`${path}/transcript?offset=${offset}&limit=${PAGE}`);
      page.messages.forEach((m, i) => transcript.message(page.offset + i, m));
      if (offset + PAGE >= page.total) return;
    }
  } catch (error) {
    report(error); // a closed run with no worker: the events still tell what they kept
  }
}

async function refreshPanels(path, view) {
  const current = view.begin();
  const [status, pending, todos, usage] = await Promise.allSettled([
    api(path), api(`${path}/pending`), api(`${path}/todos`), api(`${path}/usage`),
  ]);
  if (!current()) return; // a later refresh has begun: its answers are newer
  if (status.status === "fulfilled") {
    view.last = status.value;
    drawStatus(view.status, status.value);
  }
  else report(status.reason);
  if (pending.status === "fulfilled") drawWaiting(view.waiting, pending.value, path, view);
  if (todos.status === "fulfilled") drawTodos(view.todos, todos.value.todos);
  if (usage.status === "fulfilled") drawUsage(view.usage, usage.value);
}

function drawStatus(el, s) {
  // Steering and cancelling are for a run that still runs.
  const ended = s.execution_status !== "running";
  el.closest("main").querySelectorAll(".live").forEach((live) => { live.hidden = ended; });
  fill(el, badge(s.status), facts([
    ["Model", s.model], ["Cycle", s.cycle], ["Waiting for", s.waiting_for],
    ["Answer", s.answer], ["Error", s.error], ["Cancel reason", s.cancel_reason],
    ["Details", s.details],
  ]));
}

function drawTodos(el, todos) {
  const marks = { pending: "☐", in_progress: "◐", completed: "☑" };
  fill(el, todos.length ? todos.map((t) => h("li", { class: `todo ${t.status}` },
    h("span", { "aria-hidden": "true" }, `${marks[t.status] || "?"} `), t.content,
    h("span", { class: "sr-only" }, ` (${t.status})`))) : h("li", { class: "muted" }, "no todos"));
}

function drawUsage(el, u) {
  fill(el, facts([
    ["Tokens in", u.total.input_tokens], ["Tokens out", u.total.output_tokens],
    ["Cycles", u.cycles], ["LLM calls", u.llm_calls], ["Tool calls", u.tool_calls],
    ["Context", `${u.context_tokens} tokens`],
  ]));
}

function drawWaiting(el, tree, path, view) {
  const items = tree.items || [];
  // Redrawn only when what is pending changes: a person may be typing in these forms.
  const key = items.map((i) => `${i.kind}:${i.send_to}:${i.id}`).join("|");
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  if (!items.length) return fill(el);
  fill(el, h("h2", { id: "waiting-title" }, "Waiting for you"),
    items.map((item) => item.kind === "question"
      ? questionForm(item, () => refreshPanels(path, view))
      : approvalCard(item, () => refreshPanels(path, view))));
}

function questionForm(item, done) {
  const q = item.question;
  const multiple = q.selection === "multiple";
  const options = (q.options || []).map((option) => {
    const input = h("input", { type: multiple ? "checkbox" : "radio", name: `q-${q.id}`, value: option });
    return h("label", { class: "option" }, input, ` ${option}`);
  });
  const free = !q.options || q.allow_custom || q.selection === "free_text";
  const text = free ? h("input", { type: "text", name: "answer" }) : null;
  const submit = async (e) => {
    e.preventDefault();
    const chosen = [...e.target.querySelectorAll("input:checked")].map((i) => i.value);
    if (text && text.value.trim()) chosen.push(text.value.trim());
    if (!chosen.length) return report("Choose an option or write an answer.");
    const answer = multiple ? chosen : chosen[0];
    await send(`/agents/${encodeURIComponent(item.send_to)}/reply`,
      { answer, question_id: item.id }, done);
  };
  return h("form", { class: "card question", onsubmit: submit },
    h("fieldset", {},
      h("legend", {}, q.question),
      item.asked_by !== item.send_to ? h("p", { class: "muted" }, `asked by ${item.asked_by}`) : null,
      options,
      text ? field(q.options ? "Or your own answer" : "Your answer", text) : null),
    h("button", { type: "submit" }, "Answer"));
}

function approvalCard(item, done) {
  const a = item.approval;
  const target = `/agents/${encodeURIComponent(item.send_to)}/decide`;
  const base = { call_id: a.call_id, fingerprint: a.fingerprint };
  const message = h("input", { type: "text", name: "message" });
  const edited = h("textarea", { name: "arguments", rows: 4 }, pretty(a.arguments));
  return h("article", { class: "card approval", "aria-label": `Approval of ${a.tool}` },
    h("h3", {}, "Run ", h("code", {}, a.tool), "?"),
    h("pre", { class: "arguments" }, pretty(a.arguments)),
    facts([["Reason", a.reason], ["Call", a.call_id]]),
    h("div", { class: "buttons" },
      h("button", { type: "button", class: "approve",
        onclick: () => send(target, { ...base, action: "approve" }, done) }, "Approve"),
      h("button", { type: "button", class: "reject",
        onclick: () => send(target, { ...base, action: "reject", message: message.value.trim() || undefined }, done) },
        "Reject")),
    field("Message to the model when rejecting", message),
    h("details", {}, h("summary", {}, "Edit the arguments"),
      field("New arguments (JSON object)", edited),
      h("button", { type: "button",
        onclick: () => send(target, { ...base, action: "edit", arguments: edited.value }, done) },
        "Run with these arguments")));
}

function steerForm(path) {
  const message = h("textarea", { name: "message", rows: 2, required: true });
  return h("form", { onsubmit: async (e) => {
    e.preventDefault();
    await send(`${path}/say`, { message: message.value }, () => { message.value = ""; });
  } }, field("Message for the agent's next cycle", message), h("button", { type: "submit" }, "Send"));
}

function cancelForm(path) {
  const reason = h("input", { type: "text", name: "reason" });
  return h("form", { onsubmit: async (e) => {
    e.preventDefault();
    await send(`${path}/cancel`, { reason: reason.value.trim() || undefined }, () => {});
  } }, field("Reason (kept with the run)", reason),
  h("button", { type: "submit", class: "danger" }, "Cancel the agent"));
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
