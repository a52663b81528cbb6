// Building the page: elements from data, text always as text (never parsed as HTML).

/** An element: h("a", {href: "#/x", class: "c"}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace what `el` holds. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** An SVG element (the graph drawing). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  append(el, children);
  return el;
}

/** A status as a badge; the word itself carries the meaning, the colour only helps. */
export function badge(status) {
  return h("span", { class: `badge s-${status}` }, status);
}

/** A <dl> of label/value pairs (values that are null are left out). */
export function facts(pairs) {
  const dl = h("dl", { class: "facts" });
  for (const [label, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    dl.append(h("dt", {}, label), h("dd", {}, value));
  }
  return dl;
}

/** A unique id for label/control pairs. */
let counter = 0;
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** A labelled form control: [label, control]. */
export function field(label, control) {
  const id = control.id || uid("f");
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

/** `fn`, called once `ms` after the last of a burst of calls. */
export function debounce(fn, ms) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

/**
 * Answers can arrive out of order: `const current = begin();` before asking, and draw
 * only while `current()` is true (no later call has begun since).
 */
export function latestOnly() {
  let generation = 0;
  return () => {
    generation += 1;
    const mine = generation;
    return () => mine === generation;
  };
}
