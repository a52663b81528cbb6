// A graph drawn as inline SVG: nodes in layers from START (breadth first), edges as lines.
// Each node's status is written in it (the colour only repeats it), and the same facts
// are in the node table next to the drawing for screen readers.

import { svg } from "./dom.js";

const W = 170, H = 46, GAP_X = 30, GAP_Y = 44, PAD = 16, LOOP = 70;

/** The SVG of `graph` ({nodes, edges}) with `states` (name -> {status, visits}). */
export function drawGraph(graph, states) {
  const layers = layered(graph);
  const inner = Math.max(...layers.map((l) => l.length)) * (W + GAP_X) - GAP_X;
  const width = inner + 2 * PAD + LOOP; // room on the right for edges that loop back
  const height = layers.length * (H + GAP_Y) - GAP_Y + 2 * PAD;
  const place = new Map();
  layers.forEach((layer, row) => {
    const offset = (inner - (layer.length * (W + GAP_X) - GAP_X)) / 2;
    layer.forEach((name, col) => place.set(name, {
      x: PAD + offset + col * (W + GAP_X), y: PAD + row * (H + GAP_Y),
    }));
  });
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": `Graph ${graph.name}: ${graph.nodes.length} nodes`, class: "graph",
  });
  root.append(svg("defs", {}, svg("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7,
    orient: "auto-start-reverse",
  }, svg("path", { d: "M 0 0 L 10 5 L 0 10 z" }))));
  const seen = new Map(); // edges between the same two nodes get their labels stacked
  for (const edge of graph.edges) {
    const pair = `${edge.source}>${edge.target}`;
    seen.set(pair, (seen.get(pair) || 0) + 1);
    root.append(edgeShape(edge, place, seen.get(pair) - 1));
  }
  const kinds = new Map(graph.nodes.map((n) => [n.name, n.kind]));
  for (const [name, at] of place) root.append(nodeShape(name, kinds.get(name), states.get(name), at));
  return root;
}

function layered(graph) {
  const next = new Map();
  for (const e of graph.edges) next.set(e.source, [...(next.get(e.source) || []), e.target]);
  const depth = new Map([["START", 0]]);
  const queue = ["START"];
  while (queue.length) {
    const name = queue.shift();
    for (const target of next.get(name) || []) {
      if (!depth.has(target) && target !== "END") {
        depth.set(target, depth.get(name) + 1);
        queue.push(target);
      }
    }
  }
  let last = Math.max(...depth.values());
  for (const n of graph.nodes) if (!depth.has(n.name)) depth.set(n.name, ++last); // unreachable
  depth.set("END", last + 1);
  const layers = [];
  for (const [name, d] of depth) (layers[d] = layers[d] || []).push(name);
  return layers.filter(Boolean);
}

function nodeShape(name, kind, state, at) {
  const terminal = name === "START" || name === "END";
  const status = state ? state.status : terminal ? "terminal" : "pending";
  const visits = state && state.visits ? ` · ${state.visits}×` : "";
  return svg("g", { class: `node n-${status}`, transform: `translate(${at.x},${at.y})` },
    svg("rect", { width: W, height: H, rx: terminal ? H / 2 : 6 }),
    svg("text", { x: W / 2, y: terminal ? H / 2 + 5 : 19, "text-anchor": "middle", class: "name" },
      clip(name, 22)),
    svg("text", { x: W / 2, y: 36, "text-anchor": "middle", class: "kind" },
      terminal ? "" : `${kind} · ${status}${visits}`));
}

function edgeShape(edge, place, nth) {
  const from = place.get(edge.source), to = place.get(edge.target);
  if (!from || !to) return svg("g");
  const back = to.y <= from.y; // a loop back up: out of the right side and round
  let path, labelAt;
  if (back) {
    const x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x + W, y2 = to.y + H / 2;
    const bend = Math.max(x1, x2) + LOOP - 10;
    path = `M ${x1} ${y1} C ${bend} ${y1}, ${bend} ${y2}, ${x2} ${y2}`;
    labelAt = { x: bend - 30, y: (y1 + y2) / 2 };
  } else {
    const x1 = from.x + W / 2, y1 = from.y + H, x2 = to.x + W / 2, y2 = to.y;
    path = `M ${x1} ${y1} L ${x2} ${y2}`;
    labelAt = { x: (x1 + x2) / 2 + 6, y: (y1 + y2) / 2 };
  }
  const g = svg("g", { class: `edge${edge.dashed ? " dashed" : ""}` },
    svg("path", { d: path, "marker-end": "url(#arrow)" }));
  if (edge.label) {
    g.append(svg("text", { x: labelAt.x, y: labelAt.y + 12 * nth, class: "label" }, clip(edge.label, 18)));
  }
  return g;
}

function clip(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}
