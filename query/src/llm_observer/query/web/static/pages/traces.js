// The trace list: traces over a time range, filtered and sorted, one page of the API's cursor at a time.
//
// Everything the view shows is in the URL (#/traces?range=24h&model=gpt-4o&sort=cost&dir=desc), so a view
// can be shared and the back button works. A column sort is the API's (`sort`, `order`): ClickHouse orders the
// whole range and the cursor pages through it in that order, so nothing is ever loaded whole.

import { getJson } from "../api.js";
import { formatCost, formatCount, formatDuration, formatTime, h } from "../format.js";
import { useStyles } from "./styles.js";

const PAGE_SIZE = 50;

/** The range choices; a range is relative to the moment the page loads. */
export const RANGES = { "15m": 15 * 60, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400 };

// Filters sent to GET /api/v1/traces as they are: [URL/API name, label, placeholder].
const FILTERS = [
  ["service", "Service", "service.name"],
  ["project_id", "Project", "project id"],
  ["team_id", "Team", "team id"],
  ["user_id", "User", "user.id"],
  ["model", "Model", "e.g. gpt-4o"],
  ["provider", "Provider", "e.g. openai"],
  ["operation", "Operation", "chat, execute_tool…"],
  ["session_id", "Session", "session / conversation id"],
  ["min_duration_ms", "Min duration (ms)", "e.g. 1000"],
  ["min_cost", "Min cost ($)", "e.g. 0.01"],
  ["q", "Text", "in span names, prompts, answers, errors"],
];

// Columns: [URL sort key, header, cell renderer, numeric]; a column with a sort key sorts by the API's order
// of that name (status: by error count), the others (text) do not sort.
const COLUMNS = [
  ["start", "Start", (t) => formatTime(t.start_time), false],
  [null, "Root span", (t) => h("a", { href: `#/trace/${t.trace_id}`, class: "trace-link" }, t.root_span_name || "(no root span)"), false],
  [null, "Service", (t) => t.service_name, false],
  ["duration", "Duration", (t) => formatDuration(t.duration_ms), true],
  ["spans", "Spans", (t) => formatCount(t.span_count), true],
  ["llm_calls", "LLM calls", (t) => formatCount(t.llm_call_count), true],
  ["input_tokens", "Tokens in", (t) => formatCount(t.input_tokens), true],
  ["output_tokens", "Tokens out", (t) => formatCount(t.output_tokens), true],
  ["cost", "Cost", (t) => formatCost(t.cost_usd), true],
  ["errors", "Status", statusBadge, false],
];

const SORTS = new Set(COLUMNS.map(([key]) => key).filter(Boolean));

/** The API's window ({start_time, end_time?}) of a view's URL: absolute times, or a range back from now. */
export function windowOf(params, fallback = "24h", now = Date.now()) {
  if (params.get("start_time")) {
    const window = { start_time: params.get("start_time") };
    if (params.get("end_time")) window.end_time = params.get("end_time");
    return window;
  }
  const seconds = RANGES[params.get("range") || fallback] ?? RANGES[fallback];
  return { start_time: new Date(now - seconds * 1000).toISOString() };
}

/** The API query of the view's URL parameters: the time window and every filter that is set. */
export function apiQuery(params, now = Date.now()) {
  const query = new URLSearchParams(windowOf(params, "24h", now));
  for (const [name] of FILTERS) {
    const value = (params.get(name) || "").trim();
    if (value) query.set(name, value);
  }
  const status = params.get("status");
  if (status) query.set("status", status);
  return query;
}

/** Draw the list for the route's query; resolves (to the cleanup) once the first page is shown. */
export async function render(root, { query }) {
  useStyles();
  const params = query;
  const controller = new AbortController();
  const sort = SORTS.has(params.get("sort")) ? params.get("sort") : "start";
  const dir = params.get("dir") === "asc" ? "asc" : "desc";
  const loaded = [];
  let cursor = null;

  const form = filterForm(params);
  const summary = h("p", { class: "list-summary", role: "status", "aria-live": "polite" }, "Loading traces…");
  const table = h("table", { class: "data traces-table", "data-testid": "traces-table" });
  const head = h("thead");
  const body = h("tbody");
  table.append(head, body);
  const more = h("button", { type: "button", class: "load-more", hidden: true }, "Load more");
  const empty = h("p", { class: "empty", hidden: true }, "No traces match these filters in this time range.");

  head.append(
    h(
      "tr",
      {},
      COLUMNS.map(([key, label, , numeric]) => {
        if (!key) return h("th", { scope: "col", class: numeric ? "num" : null }, label);
        const active = key === sort;
        const next = active && dir === "desc" ? "asc" : "desc";
        const link = h("a", { href: linkWith(params, { sort: key, dir: next }) }, label, active ? (dir === "desc" ? " ▼" : " ▲") : "");
        return h(
          "th",
          { scope: "col", class: numeric ? "num" : null, "aria-sort": active ? (dir === "desc" ? "descending" : "ascending") : null },
          link,
        );
      }),
    ),
  );

  root.replaceChildren(
    h(
      "header",
      { class: "page-header" },
      h("h1", {}, "Traces"),
      h("a", { href: "#/sessions" }, "Sessions"),
      h("a", { href: "#/users" }, "Users"),
    ),
    form,
    summary,
    h("div", { class: "table-wrap" }, table),
    empty,
    more,
  );

  function draw() {
    const rows = loaded;
    body.replaceChildren(...rows.map(traceRow));
    empty.hidden = rows.length > 0;
    more.hidden = !cursor;
    summary.textContent =
      `${rows.length} trace${rows.length === 1 ? "" : "s"}` + (cursor ? " loaded (more available)" : "") + ".";
  }

  async function load() {
    const query = apiQuery(params);
    const size = Number.parseInt(params.get("page_size") || "", 10);
    query.set("limit", String(size >= 1 && size <= 1000 ? size : PAGE_SIZE));
    if (sort !== "start" || dir !== "desc") {
      query.set("sort", sort);
      query.set("order", dir);
    }
    if (cursor) query.set("cursor", cursor);
    more.disabled = true;
    try {
      const page = await getJson(`/api/v1/traces?${query}`, {}, { signal: controller.signal });
      loaded.push(...page.traces);
      cursor = page.next_cursor;
      draw();
    } catch (error) {
      if (controller.signal.aborted) return;
      summary.textContent = `Could not load traces: ${error.message ?? error}`;
    } finally {
      more.disabled = false;
    }
  }

  more.addEventListener("click", async () => {
    await load();
    // Keep the keyboard where it was: on the button, or on the table when the last page came in.
    (more.hidden ? table.querySelector("tbody tr:last-child a") : more)?.focus();
  });
  await load();
  return () => controller.abort();
}

function statusBadge(trace) {
  const cls = trace.status === "Error" ? "badge error" : trace.status === "Ok" ? "badge ok" : "badge";
  const text = trace.status === "Error" ? `Error (${trace.error_count})` : trace.status;
  return h("span", { class: cls }, text);
}

function traceRow(trace) {
  const href = `#/trace/${trace.trace_id}`;
  const cells = COLUMNS.map(([, , cell, numeric]) => h("td", { class: numeric ? "num" : null }, cell(trace)));
  const row = h("tr", { "data-trace-id": trace.trace_id, class: trace.status === "Error" ? "row-error" : null }, cells);
  // A click anywhere on the row opens the trace, as the link in it does for the keyboard.
  row.addEventListener("click", (event) => {
    if (event.target.closest("a")) return;
    location.hash = href;
  });
  return row;
}

/** The URL of this view with some parameters changed (empty values removed). */
function linkWith(params, changes) {
  const next = new URLSearchParams(params);
  for (const [key, value] of Object.entries(changes)) {
    if (value == null || value === "") next.delete(key);
    else next.set(key, value);
  }
  const text = next.toString();
  return `#/traces${text ? `?${text}` : ""}`;
}

function filterForm(params) {
  const rangeSelect = h(
    "select",
    { name: "range", id: "f-range" },
    Object.keys(RANGES).map((key) =>
      h("option", { value: key, selected: (params.get("range") || "24h") === key }, `Last ${key}`),
    ),
  );
  const statusSelect = h(
    "select",
    { name: "status", id: "f-status" },
    [
      ["", "Any status"],
      ["error", "Errors"],
      ["ok", "No errors"],
      ["unset", "Unset"],
    ].map(([value, label]) => h("option", { value, selected: (params.get("status") || "") === value }, label)),
  );
  const fields = [
    h("label", { for: "f-range" }, "Range", rangeSelect),
    h("label", { for: "f-status" }, "Status", statusSelect),
    ...FILTERS.map(([name, label, placeholder]) =>
      h(
        "label",
        { for: `f-${name}` },
        label,
        h("input", {
          id: `f-${name}`,
          name,
          type: name.startsWith("min_") ? "number" : "search",
          min: name.startsWith("min_") ? "0" : null,
          step: name === "min_cost" ? "any" : null,
          value: params.get(name) || "",
          placeholder,
        }),
      ),
    ),
  ];
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Trace filters" },
    fields,
    h("div", { class: "filter-actions" }, h("button", { type: "submit" }, "Apply"), h("a", { href: "#/traces", class: "button-link" }, "Clear")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const changes = {};
    for (const [key, value] of data.entries()) changes[key] = String(value).trim();
    if (changes.range === "24h") changes.range = "";
    // A sort survives a new filter; the absolute window of a shared link is replaced by the range chosen.
    location.hash = linkWith(params, { ...changes, start_time: "", end_time: "" });
  });
  return form;
}
