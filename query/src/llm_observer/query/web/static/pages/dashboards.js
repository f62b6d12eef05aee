// Dashboards: the numbers /api/v1/metrics/summary and /api/v1/metrics/cost compute, drawn with uPlot.
//
// The window, the group-by and a group filter live in the URL. Every chart keeps the values it was given
// in ``data-values`` (JSON), so what is drawn can be checked against the API.

import uPlot from "../vendor/uPlot.esm.js";
import { getJson } from "../api.js";
import { routeHref } from "../app.js";
import { formatCompact, formatCost, formatCount, formatDuration, formatPercent, h, truncate } from "../format.js";

const RANGES = { "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400 };
const GROUPS = { model: "model", provider: "provider", project: "project_id", team: "team_id", user: "user_id" };
// About this many points per chart.
const POINTS = 60;
// Lines per "by group" chart: the most expensive groups (the API lists them by cost), one colour each.
const TOP_GROUPS = 6;

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function chart(title, series, times, rows, format, xRange) {
  const box = h("figure", { class: "chart", dataset: { chart: title } }, h("h2", {}, title));
  const data = [times, ...series.map((line) => rows.map(line.value))];
  box.dataset.values = JSON.stringify(Object.fromEntries(series.map((line, i) => [line.label, data[i + 1]])));
  box.dataset.times = JSON.stringify(times);
  const text = css("--text");
  const grid = css("--border");
  const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  const options = {
    width: 480,
    height: 200,
    series: [{}, ...series.map((line, i) => ({
      label: line.label,
      stroke: css(`--series-${i + 1}`),
      width: 1.6,
      value: (_, v) => (v == null ? "–" : format(v)),
    }))],
    axes: [axis, { ...axis, size: 64, values: (_, ticks) => ticks.map(format) }],
    // The x axis is the window asked for, whatever part of it holds data (one point would otherwise
    // stretch the axis over years).
    scales: { x: { time: true, range: () => xRange }, y: { range: (_, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    cursor: { drag: { x: false, y: false } },
  };
  const plot = new uPlot(options, data, box);
  const resize = () => plot.setSize({ width: Math.max(260, box.clientWidth - 16), height: 200 });
  return { box, plot, resize };
}

function card(label, value) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

export async function render(root, params) {
  const range = RANGES[params.query.get("range")] ? params.query.get("range") : "24h";
  const groupBy = GROUPS[params.query.get("group_by")] ? params.query.get("group_by") : "model";
  const filterKey = GROUPS[groupBy];
  const filterValue = params.query.get(filterKey) || "";
  const seconds = RANGES[range];
  const step = Math.max(60, Math.ceil(seconds / POINTS / 60) * 60);
  // Whole steps, so that the same window asked twice gives the same buckets.
  const endSec = Math.ceil(Date.now() / 1000 / step) * step;
  const timeWindow = {
    start_time: new Date((endSec - seconds) * 1000).toISOString(),
    end_time: new Date(endSec * 1000).toISOString(),
  };
  const filter = filterValue ? { [filterKey]: filterValue } : {};

  const keep = (changes) => params.setQuery({ range, group_by: groupBy, [filterKey]: filterValue, ...changes });
  const rangeSelect = h("select", { name: "range", "aria-label": "Time window" },
    ...Object.keys(RANGES).map((key) => h("option", { value: key, selected: key === range }, `last ${key}`)));
  rangeSelect.addEventListener("change", () => keep({ range: rangeSelect.value }));
  const groupButtons = Object.keys(GROUPS).map((key) => {
    const button = h("button", { type: "button", "aria-pressed": String(key === groupBy), dataset: { group: key } }, key);
    button.addEventListener("click", () => params.setQuery({ range, group_by: key }));
    return button;
  });
  const toolbar = h("div", { class: "toolbar" },
    h("label", {}, "Window", rangeSelect),
    h("div", { role: "group", "aria-label": "Group by" }, h("span", { class: "muted" }, "Group by "), ...groupButtons));
  if (filterValue) {
    const clearFilter = h("button", { type: "button" }, `${groupBy} = ${filterValue} ✕`);
    clearFilter.addEventListener("click", () => keep({ [filterKey]: "" }));
    toolbar.append(clearFilter);
  }
  root.append(h("h1", {}, "Dashboards"), toolbar);
  root.dataset.window = JSON.stringify({ ...timeWindow, step_seconds: step, group_by: groupBy, ...filter });

  const [summary, users, costs, traces] = await Promise.all([
    getJson("/api/v1/metrics/summary", {
      ...timeWindow, ...filter, group_by: groupBy, step_seconds: step, group_series: true,
    }),
    getJson("/api/v1/metrics/summary", { ...timeWindow, ...filter, group_by: "user" }),
    getJson("/api/v1/metrics/cost", { ...timeWindow, ...filter, group_by: groupBy }),
    getJson("/api/v1/traces", { ...timeWindow, ...filter, limit: 500 }),
  ]);

  const savings = (c) => {
    const uncached = Math.max(1, (c.input_tokens || 0) - (c.cache_read_tokens || 0));
    const inputPrice = (c.input_cost_usd || 0) / uncached;
    return Math.max(0, (c.cache_read_tokens || 0) * inputPrice - (c.cache_read_cost_usd || 0));
  };
  root.append(h("div", { class: "cards" },
    card("Requests", formatCount(summary.request_count)),
    card("Error rate", formatPercent(summary.error_rate)),
    card("Latency p50", formatDuration(summary.latency_ms.p50)),
    card("Latency p95", formatDuration(summary.latency_ms.p95)),
    card("Latency p99", formatDuration(summary.latency_ms.p99)),
    card("Tokens in / out", `${formatCompact(summary.input_tokens)} / ${formatCompact(summary.output_tokens)}`),
    card("Cost", formatCost(summary.cost_usd)),
    card("Cache savings (est.)", formatCost(savings(costs)))));

  const rows = summary.series || [];
  const times = rows.map((point) => Date.parse(point.time) / 1000);
  const xRange = [endSec - seconds, endSec];
  const charts = [
    chart("Requests", [{ label: "requests", value: (p) => p.request_count }], times, rows, formatCompact, xRange),
    chart("Error rate", [{ label: "error rate", value: (p) => (p.request_count ? p.error_rate : null) }],
      times, rows, formatPercent, xRange),
    chart("Latency", [
      { label: "p50", value: (p) => (p.request_count ? p.latency_ms.p50 : null) },
      { label: "p95", value: (p) => (p.request_count ? p.latency_ms.p95 : null) },
      { label: "p99", value: (p) => (p.request_count ? p.latency_ms.p99 : null) },
    ], times, rows, formatDuration, xRange),
    chart("Tokens", [
      { label: "input", value: (p) => p.input_tokens },
      { label: "output", value: (p) => p.output_tokens },
    ], times, rows, formatCompact, xRange),
    chart("Cost", [{ label: "cost", value: (p) => p.cost_usd }], times, rows, formatCost, xRange),
  ];
  // The same window split by the group-by switch: one line per group (the most expensive ones), from each
  // group's own series, aligned on the total series' times (a step where a group had no call is 0 / gap).
  const top = summary.groups.slice(0, TOP_GROUPS);
  const pointsOf = top.map((group) => Object.fromEntries((group.series || []).map((p) => [p.time, p])));
  const byGroup = (pick, empty) => top.map((group, i) => ({
    label: group.key || "(none)",
    value: (p) => (pointsOf[i][p.time] ? pick(pointsOf[i][p.time]) : empty),
  }));
  if (top.length) {
    charts.push(
      chart(`Requests by ${groupBy}`, byGroup((p) => p.request_count, 0), times, rows, formatCompact, xRange),
      chart(`Error rate by ${groupBy}`, byGroup((p) => p.error_rate, null), times, rows, formatPercent, xRange),
      chart(`Latency p95 by ${groupBy}`, byGroup((p) => p.latency_ms.p95, null), times, rows, formatDuration, xRange),
      chart(`Tokens by ${groupBy}`, byGroup((p) => p.input_tokens + p.output_tokens, 0), times, rows, formatCompact, xRange),
      chart(`Cost by ${groupBy}`, byGroup((p) => p.cost_usd, 0), times, rows, formatCost, xRange),
    );
  }
  const grid = h("div", { class: "charts" }, ...charts.map((one) => one.box));
  root.append(grid);
  const resizeAll = () => charts.forEach((one) => one.resize());
  const observer = new ResizeObserver(resizeAll);
  observer.observe(grid);

  const maxCost = Math.max(...summary.groups.map((group) => group.cost_usd), 1e-12);
  const costByKey = Object.fromEntries(costs.groups.map((group) => [group.key, group]));
  const groupTable = h("table", { class: "data", id: "groups" },
    h("caption", { class: "muted" }, `By ${groupBy} (choose one to filter the charts)`),
    h("thead", {}, h("tr", {}, ...[groupBy, "Requests", "Errors", "p95", "Tokens in / out", "Cost", "", "Cache savings (est.)"]
      .map((title) => h("th", { scope: "col" }, title)))),
    h("tbody", {}, ...summary.groups.map((group) => h("tr", { dataset: { key: group.key } },
      h("td", {}, h("a", { href: routeHref("dashboards", [], { range, group_by: groupBy, [filterKey]: group.key }) },
        group.key || "(none)")),
      h("td", { class: "num" }, formatCount(group.request_count)),
      h("td", { class: "num" }, formatPercent(group.error_rate)),
      h("td", { class: "num" }, formatDuration(group.latency_ms.p95)),
      h("td", { class: "num" }, `${formatCompact(group.input_tokens)} / ${formatCompact(group.output_tokens)}`),
      h("td", { class: "num" }, formatCost(group.cost_usd)),
      h("td", { style: "width:8rem" }, h("div", { class: "bar", style: `width:${(100 * group.cost_usd) / maxCost}%` })),
      h("td", { class: "num" }, costByKey[group.key] ? formatCost(savings(costByKey[group.key])) : "")))));

  const topUsers = users.groups.slice().sort((a, b) => b.cost_usd - a.cost_usd).slice(0, 10);
  const userTable = h("table", { class: "data", id: "top-users" },
    h("caption", { class: "muted" }, "Top users by cost"),
    h("thead", {}, h("tr", {}, ...["User", "Requests", "Cost"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, ...topUsers.map((user) => h("tr", {},
      h("td", {}, user.key ? h("a", { href: routeHref("users", [user.key]) }, user.key) : "(none)"),
      h("td", { class: "num" }, formatCount(user.request_count)),
      h("td", { class: "num" }, formatCost(user.cost_usd))))));

  const topTraces = traces.traces.slice().sort((a, b) => b.cost_usd - a.cost_usd).slice(0, 10);
  const traceTable = h("table", { class: "data", id: "top-traces" },
    h("caption", { class: "muted" },
      traces.next_cursor ? "Most expensive of the latest 500 traces" : "Most expensive traces"),
    h("thead", {}, h("tr", {}, ...["Trace", "Service", "Duration", "Cost"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, ...topTraces.map((trace) => h("tr", {},
      h("td", {}, h("a", { href: routeHref("trace", [trace.trace_id]) }, truncate(trace.root_span_name || trace.trace_id, 60))),
      h("td", {}, trace.service_name || ""),
      h("td", { class: "num" }, formatDuration(trace.duration_ms)),
      h("td", { class: "num" }, formatCost(trace.cost_usd))))));

  root.append(h("div", { class: "two" }, h("div", { class: "panel" }, groupTable)),
    h("div", { class: "two" }, h("div", { class: "panel" }, userTable), h("div", { class: "panel" }, traceTable)));
  resizeAll();

  const onTheme = () => params.setQuery({ range, group_by: groupBy, [filterKey]: filterValue }, { replace: true });
  window.addEventListener("llm-observer:theme", onTheme);
  return () => {
    observer.disconnect();
    window.removeEventListener("llm-observer:theme", onTheme);
    charts.forEach((one) => one.plot.destroy());
  };
}
