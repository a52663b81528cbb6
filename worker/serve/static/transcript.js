// The live transcript: messages by their index, and the text of the LLM call streaming now.
//
// Token events carry (cycle, call, attempt): a retried call streams its text again from the
// start, so only the highest attempt's text of a call is shown. The assistant message that
// ends the call replaces its streamed text.

import { h } from "./dom.js";

const LONG = 2000; // characters of a tool result shown before "show all"

export class Transcript {
  constructor() {
    this.list = h("ol", { class: "transcript", "aria-live": "polite", "aria-relevant": "additions text" });
    this.items = new Map(); // message index -> <li>
    this.streams = new Map(); // "cycle/call" -> { attempt, li, text }
  }

  /** A message (from the transcript query or a `message` event); a repeat is ignored. */
  message(index, message) {
    if (message.role === "assistant") this.endStreams(); // its text was streaming until now
    if (this.items.has(index)) return;
    const li = messageItem(index, message);
    this.items.set(index, li);
    const next = [...this.items.keys()].filter((i) => i > index).sort((a, b) => a - b)[0];
    this.list.insertBefore(li, next === undefined ? null : this.items.get(next));
  }

  /** A `token` event: more text of one attempt of one call. */
  token(event) {
    const key = `${event.cycle}/${event.call}`;
    let stream = this.streams.get(key);
    if (stream && event.attempt < stream.attempt) return; // an older attempt's late batch
    if (!stream || event.attempt > stream.attempt) {
      if (stream) stream.li.remove();
      const text = h("span", { class: "text" });
      const li = h("li", { class: "msg assistant streaming", "data-attempt": event.attempt },
        h("span", { class: "role" }, `assistant (streaming${event.attempt > 1 ? `, attempt ${event.attempt}` : ""})`),
        text);
      stream = { attempt: event.attempt, li, text };
      this.streams.set(key, stream);
      this.list.append(li);
    }
    stream.text.textContent += event.text || "";
  }

  /** Streamed text that no message replaced yet goes when the next message arrives. */
  endStreams() {
    for (const stream of this.streams.values()) stream.li.remove();
    this.streams.clear();
  }

  /** Start again (after a compaction the query's transcript is the truth). */
  clear() {
    this.list.replaceChildren();
    this.items.clear();
    this.streams.clear();
  }
}

function messageItem(index, m) {
  const li = h("li", { class: `msg ${m.role}`, "data-index": index },
    h("span", { class: "role" }, m.role === "tool" ? `tool ${m.name || ""}` : m.role));
  if (m.content) li.append(body(m.content));
  for (const call of m.tool_calls || []) {
    li.append(h("div", { class: "call" }, h("code", {}, `${call.name}(${call.arguments})`)));
  }
  return li;
}

function body(text) {
  if (text.length <= LONG) return h("div", { class: "text" }, text);
  return h("details", { class: "text" },
    h("summary", {}, `${text.slice(0, 200)}… (${text.length} characters)`), h("pre", {}, text));
}
