// A conversation (gen_ai.conversation.id / session.id) as one thread across its traces: each turn with its
// prompt, answer, latency, tokens and cost, then the session's totals; without an id, the recent sessions.

import { getJson } from "../api.js";
import { formatCost, formatCount, formatDuration, formatTime, h } from "../format.js";
import { useStyles } from "./styles.js";
import { RANGES, windowOf } from "./traces.js";

const DEFAULT_RANGE = "7d";

/** ``#/sessions/{id}`` or ``#/sessions``; resolves (to the cleanup) once the data is shown. */
export async function render(root, { args, query, setQuery }) {
  useStyles();
  const controller = new AbortController();
  const within = windowOf(query, DEFAULT_RANGE);
  const options = { signal: controller.signal };
  try {
    if (args[0]) {
      const doc = await getJson(`/api/v1/sessions/${encodeURIComponent(args[0])}`, within, options);
      root.replaceChildren(...sessionView(doc, query, setQuery));
    } else {
      const doc = await getJson("/api/v1/sessions", { ...within, user_id: query.get("user_id") }, options);
      root.replaceChildren(
        h("header", { class: "page-header" }, h("h1", {}, "Sessions"), rangePicker(query, setQuery)),
        sessionTable(doc.sessions),
      );
    }
  } catch (error) {
    root.replaceChildren(
      h("header", { class: "page-header" }, h("h1", {}, args[0] ? `Session ${args[0]}` : "Sessions"), rangePicker(query, setQuery)),
      h("p", { class: "error-message", role: "alert" }, `Could not load: ${error.message ?? error}`),
    );
  }
  return () => controller.abort();
}

/** A range selector that rewrites the URL's ``range`` (the page reloads its data for it). */
export function rangePicker(query, setQuery, fallback = DEFAULT_RANGE) {
  const select = h(
    "select",
    { "aria-label": "Time range" },
    Object.keys(RANGES).map((key) => h("option", { value: key, selected: (query.get("range") || fallback) === key }, `Last ${key}`)),
  );
  select.addEventListener("change", () => {
    const next = Object.fromEntries(query.entries());
    delete next.start_time;
    delete next.end_time;
    setQuery({ ...next, range: select.value === fallback ? "" : select.value });
  });
  return select;
}

function sessionView(doc, query, setQuery) {
  const users = doc.user_ids.map((user, i) => [i ? ", " : "", h("a", { href: `#/users/${encodeURIComponent(user)}` }, user)]);
  return [
    h(
      "header",
      { class: "page-header" },
      h("h1", {}, "Session ", h("code", {}, doc.session_id)),
      users.length ? h("span", {}, "user ", ...users.flat()) : null,
      rangePicker(query, setQuery),
    ),
    h(
      "dl",
      { class: "stats", "data-testid": "session-totals" },
      stat("Turns", formatCount(doc.turn_count), "turns"),
      stat("From", formatTime(doc.start_time)),
      stat("To", formatTime(doc.end_time)),
      stat("Time in turns", formatDuration(doc.duration_ms)),
      stat("LLM calls", formatCount(doc.llm_call_count)),
      stat("Tokens in", formatCount(doc.input_tokens), "input-tokens"),
      stat("Tokens out", formatCount(doc.output_tokens), "output-tokens"),
      stat("Cost", formatCost(doc.cost_usd), "cost"),
      stat("Errors", formatCount(doc.error_count), "errors"),
    ),
    h("ol", { class: "turns", "data-testid": "turns" }, doc.turns.map(turnItem)),
  ];
}

function turnItem(turn, index) {
  return h(
    "li",
    { class: "turn", "data-trace-id": turn.trace_id },
    h(
      "div",
      { class: "turn-head" },
      h("strong", {}, `Turn ${index + 1}`),
      h("span", {}, formatTime(turn.start_time)),
      h("span", {}, formatDuration(turn.duration_ms)),
      h("span", {}, `${formatCount(turn.input_tokens)} in / ${formatCount(turn.output_tokens)} out`),
      h("span", {}, formatCost(turn.cost_usd)),
      turn.error_count ? h("span", { class: "badge error" }, `${turn.error_count} error${turn.error_count === 1 ? "" : "s"}`) : null,
      h("a", { href: `#/trace/${turn.trace_id}` }, `Open trace (${turn.span_count} spans)`),
    ),
    h("div", { class: "msg msg-user", "data-role": "user" }, h("div", { class: "msg-role" }, "user"), h("div", { class: "msg-text" }, turn.prompt ?? "(prompt not captured)")),
    h("div", { class: "msg msg-assistant", "data-role": "assistant" }, h("div", { class: "msg-role" }, "assistant"), h("div", { class: "msg-text" }, turn.answer ?? (turn.error_count ? "(no answer: the call failed)" : "(answer not captured)"))),
  );
}

/** The table of sessions (also on a user's page). */
export function sessionTable(sessions) {
  if (!sessions.length) return h("p", { class: "empty" }, "No sessions in this time range.");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data", "data-testid": "sessions-table" },
      h(
        "thead",
        {},
        h("tr", {}, ["Session", "User", "Last active", "Traces", "LLM calls", "Tokens in", "Tokens out", "Cost", "Errors"].map((label, i) => h("th", { scope: "col", class: i >= 3 ? "num" : null }, label))),
      ),
      h(
        "tbody",
        {},
        sessions.map((s) =>
          h(
            "tr",
            { "data-session-id": s.session_id },
            h("td", {}, h("a", { href: `#/sessions/${encodeURIComponent(s.session_id)}` }, s.session_id)),
            h("td", {}, s.user_id ? h("a", { href: `#/users/${encodeURIComponent(s.user_id)}` }, s.user_id) : "–"),
            h("td", {}, formatTime(s.end_time)),
            h("td", { class: "num" }, formatCount(s.trace_count)),
            h("td", { class: "num" }, formatCount(s.llm_call_count)),
            h("td", { class: "num" }, formatCount(s.input_tokens)),
            h("td", { class: "num" }, formatCount(s.output_tokens)),
            h("td", { class: "num" }, formatCost(s.cost_usd)),
            h("td", { class: `num${s.error_count ? " error" : ""}` }, formatCount(s.error_count)),
          ),
        ),
      ),
    ),
  );
}

export function stat(label, value, testid) {
  return h("div", { class: "stat" }, h("dt", {}, label), h("dd", { "data-stat": testid ?? null }, value));
}
