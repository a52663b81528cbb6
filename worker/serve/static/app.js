// The console's entry: the token, the routes (#/, #/agents/ID, #/graphs/ID), the alert.

import { api, ApiError, forgetToken, setToken, token } from "./api.js";
import { field, fill, h } from "./dom.js";
import { showAgent } from "./agent.js";
import { showGraph } from "./graph.js";
import { showList } from "./list.js";

const main = document.getElementById("main");
const alertBox = document.getElementById("alert");
let leave = () => {};

/** Say what went wrong, in the page's one alert region. */
export function report(error) {
  alertBox.textContent = error instanceof Error ? error.message : String(error);
  alertBox.hidden = false;
}

export function clearReport() {
  alertBox.hidden = true;
  alertBox.textContent = "";
}

/** POST `body` to `path`; then `done()`, or the error in the alert region. */
export async function send(path, body, done) {
  try {
    await api(path, { method: "POST", body });
    clearReport();
    done();
  } catch (error) {
    report(error);
  }
}

function takeTokenFromUrl() {
  // The printed URL carries the token in its fragment (#token=…), which is never sent to
  // the server; keep it for this tab and take it out of the address bar.
  const match = location.hash.match(/^#token=([^&]+)/);
  if (!match) return;
  setToken(decodeURIComponent(match[1]));
  history.replaceState(null, "", `${location.pathname}#/`);
}

function askForToken(why) {
  const input = h("input", { type: "password", name: "token", autocomplete: "off", required: true });
  const form = h(
    "form",
    { class: "card narrow", onsubmit: (e) => { e.preventDefault(); setToken(input.value.trim()); route(); } },
    h("h1", {}, "Sign in"),
    h("p", {}, why || "The server printed its API token at start (or it is DURAGENT_API_TOKEN)."),
    field("API token", input),
    h("button", { type: "submit" }, "Open the console"),
  );
  fill(main, form);
  input.focus();
}

async function route() {
  leave();
  leave = () => {};
  clearReport();
  document.getElementById("forget").hidden = !token();
  if (!token()) return askForToken();
  try {
    await api("/agents?limit=1"); // checks the token before drawing a page
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      forgetToken();
      return askForToken("That token was refused; try again.");
    }
    report(error);
  }
  const [, kind, id] = location.hash.match(/^#\/(agents|graphs)\/(.+)$/) || [];
  const name = id && decodeURIComponent(id);
  if (kind === "agents") leave = showAgent(main, name);
  else if (kind === "graphs") leave = showGraph(main, name);
  else leave = showList(main);
}

document.getElementById("forget").addEventListener("click", () => {
  forgetToken();
  route();
});
window.addEventListener("hashchange", route);
takeTokenFromUrl();
route();
