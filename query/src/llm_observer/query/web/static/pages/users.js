// A user's page: their spend, tokens, errors and models over the window, and their sessions; without an id,
// the users ranked by spend (the metrics API grouped by user).

import { getJson } from "../api.js";
import { formatCost, formatCount, formatPercent, formatTime, h } from "../format.js";
import { rangePicker, sessionTable, stat } from "./sessions.js";
import { useStyles } from "./styles.js";
import { windowOf } from "./traces.js";

const DEFAULT_RANGE = "7d";

/** ``#/users/{id}`` or ``#/users``; resolves (to the cleanup) once the data is shown. */
export async function render(root, { args, query, setQuery }) {
  useStyles();
  const controller = new AbortController();
  const within = windowOf(query, DEFAULT_RANGE);
  const options = { signal: controller.signal };
  const picker = rangePicker(query, setQuery, DEFAULT_RANGE);
  try {
    if (args[0]) {
      const doc = await getJson(`/api/v1/users/${encodeURIComponent(args[0])}`, within, options);
      root.replaceChildren(...userView(doc, query, picker));
    } else {
      const doc = await getJson("/api/v1/metrics/summary", { ...within, group_by: "user" }, options);
      root.replaceChildren(h("header", { class: "page-header" }, h("h1", {}, "Users"), picker), userTable(doc.groups));
    }
  } catch (error) {
    root.replaceChildren(
      h("header", { class: "page-header" }, h("h1", {}, args[0] ? `User ${args[0]}` : "Users"), picker),
      h("p", { class: "error-message", role: "alert" }, `Could not load: ${error.message ?? error}`),
    );
  }
  return () => controller.abort();
}

function userView(doc, query, picker) {
  const traces = new URLSearchParams({ user_id: doc.user_id });
  if (query.get("range")) traces.set("range", query.get("range"));
  return [
    h("header", { class: "page-header" }, h("h1", {}, "User ", h("code", {}, doc.user_id)), h("a", { href: `#/traces?${traces}` }, "Their traces"), picker),
    h(
      "dl",
      { class: "stats", "data-testid": "user-totals" },
      stat("Spend", formatCost(doc.cost_usd), "cost"),
      stat("Traces", formatCount(doc.trace_count), "traces"),
      stat("Sessions", formatCount(doc.session_count), "sessions"),
      stat("LLM calls", formatCount(doc.llm_call_count), "llm-calls"),
      stat("Errors", formatCount(doc.error_count), "errors"),
      stat("Tokens in", formatCount(doc.input_tokens), "input-tokens"),
      stat("Tokens out", formatCount(doc.output_tokens), "output-tokens"),
      stat("First seen", formatTime(doc.first_seen)),
      stat("Last seen", formatTime(doc.last_seen)),
    ),
    doc.models.length ? h("p", { class: "muted" }, `Models: ${doc.models.join(", ")}`) : null,
    h("h2", {}, "Sessions"),
    sessionTable(doc.sessions),
  ];
}

function userTable(groups) {
  const users = groups.filter((group) => group.key);
  if (!users.length) return h("p", { class: "empty" }, "No model calls name a user (user.id) in this time range.");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data", "data-testid": "users-table" },
      h("thead", {}, h("tr", {}, ["User", "Requests", "Error rate", "Tokens in", "Tokens out", "Cost"].map((label, i) => h("th", { scope: "col", class: i ? "num" : null }, label)))),
      h(
        "tbody",
        {},
        users.map((group) =>
          h(
            "tr",
            { "data-user-id": group.key },
            h("td", {}, h("a", { href: `#/users/${encodeURIComponent(group.key)}` }, group.key)),
            h("td", { class: "num" }, formatCount(group.request_count)),
            h("td", { class: "num" }, formatPercent(group.error_rate)),
            h("td", { class: "num" }, formatCount(group.input_tokens)),
            h("td", { class: "num" }, formatCount(group.output_tokens)),
            h("td", { class: "num" }, formatCost(group.cost_usd)),
          ),
        ),
      ),
    ),
  );
}
