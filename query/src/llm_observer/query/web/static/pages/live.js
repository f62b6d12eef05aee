// Live: new spans as they arrive, from the SSE tail (/api/v1/tail) read with the caller's credential.
// Filters live in the URL; pausing keeps the stream open and holds new spans until resumed.

import { readEvents, showMessage } from "../api.js";
import { routeHref } from "../app.js";
import { formatCost, formatDuration, formatTime, h, truncate } from "../format.js";

const FILTERS = [
  ["service", "Service"],
  ["model", "Model"],
  ["provider", "Provider"],
  ["operation", "Operation"],
  ["name", "Span name"],
  ["user_id", "User"],
  ["team_id", "Team"],
  ["session_id", "Session"],
];
// Rows kept on screen; older ones are dropped from the bottom.
const MAX_ROWS = 500;
// Reconnect after a dropped stream, growing to this many milliseconds between tries.
const MAX_RETRY_MS = 15000;

function spanRow(span) {
  const tokens = span.input_tokens || span.output_tokens
    ? `${span.input_tokens ?? 0} / ${span.output_tokens ?? 0}` : "";
  const status = span.status || "unset";
  return h("tr", { class: "fresh", dataset: { traceId: span.trace_id, spanId: span.span_id } },
    h("td", { class: "mono" }, formatTime(span.start_time)),
    h("td", {}, h("a", { href: routeHref("trace", [span.trace_id], { span: span.span_id }) },
      truncate(span.name, 70))),
    h("td", {}, span.service_name || ""),
    h("td", {}, span.request_model || span.response_model || ""),
    h("td", { class: "num" }, formatDuration(span.duration_ms)),
    h("td", { class: "num" }, tokens),
    h("td", { class: "num" }, span.cost_usd ? formatCost(span.cost_usd) : ""),
    h("td", { class: `status-${status}` }, status));
}

export function render(root, params) {
  const values = Object.fromEntries(FILTERS.map(([key]) => [key, params.query.get(key) || ""]));
  const inputs = FILTERS.map(([key, label]) =>
    h("label", {}, label, h("input", { name: key, value: values[key], size: 12 })));
  const form = h("form", { class: "toolbar", "aria-label": "Live filters" }, ...inputs,
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    params.setQuery(Object.fromEntries(FILTERS.map(([key]) => [key, String(data.get(key) || "").trim()])));
  });

  const state = h("span", { class: "live-state", "data-state": "connecting", role: "status" }, "Connecting…");
  const pause = h("button", { type: "button", "aria-pressed": "false", id: "live-pause" }, "Pause");
  const clear = h("button", { type: "button" }, "Clear");
  const held = h("span", { class: "muted", id: "live-held" });
  const body = h("tbody", { id: "live-rows" });
  const table = h("table", { class: "data", "aria-label": "Spans as they arrive" },
    h("thead", {}, h("tr", {},
      ...["Start", "Span", "Service", "Model", "Duration", "Tokens in / out", "Cost", "Status"]
        .map((title) => h("th", { scope: "col" }, title)))),
    body);
  const empty = h("p", { class: "muted", id: "live-empty" },
    "Waiting for new spans. Spans stored before this page opened are on the Traces page.");
  root.append(h("h1", {}, "Live"), form,
    h("div", { class: "toolbar" }, state, pause, clear, held), empty, table);

  let paused = false;
  let waiting = [];
  const controller = new AbortController();

  function show(spans) {
    if (!spans.length) return;
    empty.hidden = true;
    const fragment = document.createDocumentFragment();
    for (const span of spans.slice().reverse()) fragment.append(spanRow(span));
    body.prepend(fragment);
    while (body.rows.length > MAX_ROWS) body.lastElementChild.remove();
  }

  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume" : "Pause";
    if (!paused) {
      show(waiting);
      waiting = [];
      held.textContent = "";
    }
  });
  clear.addEventListener("click", () => {
    body.replaceChildren();
    empty.hidden = false;
  });

  function setState(name, text) {
    state.dataset.state = name;
    state.textContent = text;
  }

  const filters = Object.fromEntries(Object.entries(values).filter(([, value]) => value));
  let ready;
  const opened = new Promise((resolve) => { ready = resolve; });

  async function stream() {
    let retry = 1000;
    while (!controller.signal.aborted) {
      try {
        setState("connecting", "Connecting…");
        await readEvents("/api/v1/tail", filters, (name, data) => {
          if (name === "span") {
            if (paused) {
              waiting.push(data);
              held.textContent = `${waiting.length} new while paused`;
            } else {
              show([data]);
            }
          } else if (name === "error") {
            showMessage(data.error ? data.error.message : "the live tail ended");
          }
        }, controller.signal, () => {
          setState("live", "Live");
          retry = 1000;
          ready();
        });
      } catch (error) {
        if (controller.signal.aborted) return;
        ready();
        // Signed out: the shell asks for a key; stop here rather than retry without one.
        if (error && error.status === 401) return;
        setState("error", `Disconnected (${error.message}); retrying`);
      }
      if (controller.signal.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, retry));
      retry = Math.min(retry * 2, MAX_RETRY_MS);
    }
  }
  stream();
  // The page is ready once the tail is open: every span sent from then on shows.
  return opened.then(() => () => controller.abort());
}
