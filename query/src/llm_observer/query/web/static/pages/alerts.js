// Alerts: what fires and is pending now (with a link to the traces of each alert's window), the incidents
// correlation formed with their hint, silences (listed, made from an alert's labels or by hand, expired),
// and the rules with their last evaluation. Everything comes from /api/v1/alerts…; when the service runs
// no alerting, the page says how to turn it on (it asks /api/v1/alerts/status first, so nothing fails).

import { getJson, postJson, request, showMessage } from "../api.js";
import { formatAgo, formatTime, h, parseTime } from "../format.js";
import { useStyles } from "./styles.js";

// Alert labels that are trace-list filters: label → the trace list's URL parameter.
const TRACE_FILTERS = { model: "model", provider: "provider", service: "service", project: "project_id", team: "team_id", user: "user_id", operation: "operation" };
// Labels every alert has: shown as columns, not as chips.
const IMPLIED = new Set(["alertname", "organization_id"]);
const DURATIONS = ["30m", "1h", "2h", "4h", "12h", "1d", "7d"];
const DEFAULT_WINDOW_S = 300;

/** ``#/alerts``; resolves (to the cleanup) once everything is shown. */
export async function render(root) {
  useStyles();
  const controller = new AbortController();
  const options = { signal: controller.signal };
  const state = { root, options };
  try {
    const status = await getJson("/api/v1/alerts/status", {}, options);
    if (!status.enabled) {
      root.replaceChildren(header(), disabledNotice());
      return () => controller.abort();
    }
    await draw(state);
  } catch (error) {
    if (controller.signal.aborted) return () => {};
    root.replaceChildren(header(), h("p", { class: "error-message", role: "alert" }, `Could not load: ${error.message ?? error}`));
  }
  return () => controller.abort();
}

function header() {
  return h("header", { class: "page-header" }, h("h1", {}, "Alerts"));
}

function disabledNotice() {
  return h(
    "section",
    { class: "panel", "data-testid": "alerting-off" },
    h("h2", {}, "Alerting is not enabled"),
    h("p", {}, "This service evaluates no alert rules. List the alerting extension in the config and add rules:"),
    h("pre", {}, "service:\n  extensions: [query, alerting]\nalerting:\n  rules:\n    - name: HighErrorRate\n      kind: threshold\n      measure: error_rate\n      threshold: 0.05\n      for: 2m"),
  );
}

async function draw(state) {
  const { options } = state;
  const [alerts, incidents, silences, rules] = await Promise.all([
    getJson("/api/v1/alerts", { state: ["firing", "pending"] }, options),
    getJson("/api/v1/alerts/incidents", {}, options),
    getJson("/api/v1/alerts/silences", {}, options),
    getJson("/api/v1/alerts/rules", {}, options),
  ]);
  const windows = new Map(rules.rules.map((rule) => [rule.name, Number(rule.spec?.window) || DEFAULT_WINDOW_S]));
  const firing = alerts.alerts.filter((alert) => alert.state === "firing").length;
  const pending = alerts.alerts.length - firing;
  const active = silences.silences.filter((silence) => silence.state !== "expired");
  state.root.replaceChildren(
    header(),
    h(
      "div",
      { class: "cards", "data-testid": "alert-counts" },
      card("Firing", firing, "firing"),
      card("Pending", pending, "pending"),
      card("Open incidents", incidents.incidents.length, "incidents"),
      card("Silences", active.length, "silences"),
    ),
    h("h2", { id: "alerts-now" }, "Firing and pending"),
    alertTable(alerts.alerts, windows, state),
    h("h2", { id: "incidents" }, "Incidents"),
    incidentList(incidents.incidents, alerts.alerts),
    h("h2", { id: "silences" }, "Silences"),
    silenceForm(state),
    silenceTable(silences.silences, state),
    h("h2", { id: "rules" }, "Rules"),
    ruleTable(rules.rules),
  );
}

function card(label, value, key) {
  return h("div", { class: "card", "data-count": key }, h("div", { class: "label" }, label), h("div", { class: "value" }, String(value)));
}

function chips(labels) {
  const shown = Object.entries(labels).filter(([name]) => !IMPLIED.has(name)).sort(([a], [b]) => a.localeCompare(b));
  if (!shown.length) return h("span", { class: "muted" }, "–");
  return h("ul", { class: "labels" }, shown.map(([name, value]) => h("li", {}, `${name}=${value}`)));
}

function formatValue(value) {
  if (value == null || !Number.isFinite(value)) return "–";
  return Math.abs(value) >= 1000 || value === Math.round(value) ? String(Math.round(value * 100) / 100) : value.toPrecision(3);
}

/** ``#/traces?…`` over an alert's window (from one rule window before it began to its end), filtered by its labels. */
export function tracesHref(alert, windowSeconds = DEFAULT_WINDOW_S, now = Date.now()) {
  const params = new URLSearchParams();
  const since = parseTime(alert.active_since);
  const until = alert.resolved_at ? parseTime(alert.resolved_at) : now;
  params.set("start_time", new Date(since - windowSeconds * 1000).toISOString());
  params.set("end_time", new Date(until + 60 * 1000).toISOString());
  for (const [label, param] of Object.entries(TRACE_FILTERS)) {
    if (alert.labels[label]) params.set(param, alert.labels[label]);
  }
  return `#/traces?${params}`;
}

/** Matchers selecting exactly this alert's label set, one per line (as the silence form takes them). */
export function matchersOf(labels) {
  return Object.entries(labels)
    .filter(([name]) => name !== "organization_id")
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, value]) => `${name}="${String(value).replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`)
    .join("\n");
}

function alertTable(alerts, windows, state) {
  if (!alerts.length) return h("p", { class: "empty", "data-testid": "no-alerts" }, "Nothing is firing or pending.");
  const order = { firing: 0, pending: 1 };
  const sorted = [...alerts].sort((a, b) => (order[a.state] ?? 2) - (order[b.state] ?? 2) || parseTime(a.active_since) - parseTime(b.active_since));
  const headers = ["State", "Rule", "Labels", "Value", "Since", "Summary", ""];
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data", "data-testid": "alerts-table" },
      h("thead", {}, h("tr", {}, headers.map((label, i) => h("th", { scope: "col", class: i === 3 ? "num" : null }, label)))),
      h(
        "tbody",
        {},
        sorted.map((alert) =>
          h(
            "tr",
            { "data-fingerprint": alert.fingerprint, "data-state": alert.state },
            h("td", {}, h("span", { class: `alert-state state-${alert.state}` }, alert.state)),
            h("td", {}, alert.rule),
            h("td", {}, chips(alert.labels)),
            h("td", { class: "num" }, formatValue(alert.value)),
            h("td", { title: formatTime(alert.active_since) }, formatAgo(alert.active_since)),
            h("td", {}, alert.annotations.summary || alert.annotations.description || ""),
            h(
              "td",
              { class: "actions" },
              h("a", { href: tracesHref(alert, windows.get(alert.rule)), "aria-label": `Traces of ${alert.rule} ${alert.fingerprint}` }, "Traces"),
              " ",
              h(
                "button",
                {
                  type: "button",
                  "aria-label": `Silence ${alert.rule} ${alert.fingerprint}`,
                  onclick: () => fillSilence(state, matchersOf(alert.labels)),
                },
                "Silence…",
              ),
            ),
          ),
        ),
      ),
    ),
  );
}

function incidentList(incidents, alerts) {
  if (!incidents.length) return h("p", { class: "empty", "data-testid": "no-incidents" }, "No open incidents.");
  const rulesOf = new Map(alerts.map((alert) => [alert.fingerprint, alert.rule]));
  return h(
    "ul",
    { class: "incidents", "data-testid": "incidents" },
    incidents.map((incident) =>
      h(
        "li",
        { class: "panel", "data-incident": incident.id },
        h("p", { class: "hint" }, incident.summary),
        h(
          "p",
          { class: "muted" },
          `${incident.dimension}=${incident.value} · since ${formatTime(incident.started_at)} · `,
          `${incident.alert_fingerprints.length} alert${incident.alert_fingerprints.length === 1 ? "" : "s"}: `,
          [...new Set([...incident.rules, ...incident.alert_fingerprints.map((f) => rulesOf.get(f)).filter(Boolean)])].join(", "),
        ),
      ),
    ),
  );
}

function fillSilence(state, matchers) {
  const box = state.root.querySelector("#silence-matchers");
  box.value = matchers;
  box.focus();
  box.scrollIntoView({ block: "center" });
}

function silenceForm(state) {
  const matchers = h("textarea", { id: "silence-matchers", name: "matchers", rows: 3, required: true, placeholder: 'provider="openai"\nseverity="page"' });
  const duration = h("select", { id: "silence-duration", name: "duration" }, DURATIONS.map((d) => h("option", { value: d, selected: d === "2h" }, d)));
  const comment = h("input", { id: "silence-comment", name: "comment", required: true, placeholder: "why" });
  const form = h(
    "form",
    { class: "toolbar silence-form", "data-testid": "silence-form" },
    h("label", { for: "silence-matchers" }, "Matchers (one per line)", matchers),
    h("label", { for: "silence-duration" }, "For", duration),
    h("label", { for: "silence-comment" }, "Comment", comment),
    h("button", { type: "submit", class: "primary" }, "Create silence"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const lines = matchers.value.split("\n").map((line) => line.trim()).filter(Boolean);
    try {
      await postJson("/api/v1/alerts/silences", { matchers: lines, duration: duration.value, comment: comment.value.trim() });
    } catch {
      return; // The message bar says what was wrong; the form keeps what was typed.
    }
    showMessage("");
    await redraw(state);
  });
  return form;
}

async function redraw(state) {
  try {
    await draw(state);
  } catch (error) {
    if (!state.options.signal.aborted) showMessage(`Could not reload the alerts: ${error.message ?? error}`);
  }
}

function silenceTable(silences, state) {
  if (!silences.length) return h("p", { class: "empty", "data-testid": "no-silences" }, "No silences.");
  const order = { active: 0, pending: 1, expired: 2 };
  const sorted = [...silences].sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3));
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data", "data-testid": "silences-table" },
      h("thead", {}, h("tr", {}, ["State", "Matchers", "Starts", "Ends", "Created by", "Comment", ""].map((label) => h("th", { scope: "col" }, label)))),
      h(
        "tbody",
        {},
        sorted.map((silence) =>
          h(
            "tr",
            { "data-silence": silence.id, "data-state": silence.state },
            h("td", {}, silence.state),
            h("td", {}, h("ul", { class: "labels" }, silence.matchers.map((m) => h("li", {}, m)))),
            h("td", {}, formatTime(silence.starts_at)),
            h("td", {}, formatTime(silence.ends_at)),
            h("td", {}, silence.created_by),
            h("td", {}, silence.comment),
            h(
              "td",
              {},
              silence.state === "expired"
                ? null
                : h(
                    "button",
                    {
                      type: "button",
                      "aria-label": `Expire silence ${silence.id}`,
                      onclick: async () => {
                        try {
                          await request(`/api/v1/alerts/silences/${encodeURIComponent(silence.id)}`, {}, { method: "DELETE" });
                        } catch {
                          return;
                        }
                        await redraw(state);
                      },
                    },
                    "Expire",
                  ),
            ),
          ),
        ),
      ),
    ),
  );
}

function ruleTable(rules) {
  if (!rules.length) return h("p", { class: "empty", "data-testid": "no-rules" }, "No alert rules are configured.");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data", "data-testid": "rules-table" },
      h("thead", {}, h("tr", {}, ["Rule", "Kind", "Organization", "Last evaluated", "Last error"].map((label) => h("th", { scope: "col" }, label)))),
      h(
        "tbody",
        {},
        rules.map((rule) =>
          h(
            "tr",
            { "data-rule": rule.name },
            h("td", {}, rule.name),
            h("td", {}, rule.kind),
            h("td", {}, rule.organization_id || h("span", { class: "muted" }, "each")),
            h("td", { title: rule.last_evaluated ? formatTime(rule.last_evaluated) : null }, rule.last_evaluated ? formatAgo(rule.last_evaluated) : "never"),
            h("td", { class: rule.last_error ? "error" : "muted" }, rule.last_error || "–"),
          ),
        ),
      ),
    ),
  );
}
