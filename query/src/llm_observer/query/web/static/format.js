// Small formatting helpers every page shares: numbers, durations, money, times, and HTML escaping.
// Pure functions, no DOM state, so any page (and the shell) can import them.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text made safe to place inside HTML markup or an attribute value. */
export function escapeHtml(value) {
  return String(value ?? "").replace(/[&<>"']/g, (ch) => ESCAPES[ch]);
}

/** A duration in milliseconds as a person reads it: 850 µs, 12.3 ms, 4.20 s, 3m 05s. */
export function formatDuration(ms) {
  if (ms == null || !Number.isFinite(ms)) return "–";
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(2)} s`;
  const m = Math.floor(s / 60);
  return `${m}m ${String(Math.round(s - m * 60)).padStart(2, "0")}s`;
}

/** A cost in US dollars, with the precision small per-call costs need ($0.000123). */
export function formatCost(usd) {
  if (usd == null || !Number.isFinite(usd)) return "–";
  if (usd === 0) return "$0";
  const abs = Math.abs(usd);
  if (abs >= 100) return `$${usd.toFixed(0)}`;
  if (abs >= 1) return `$${usd.toFixed(2)}`;
  if (abs >= 0.01) return `$${usd.toFixed(4)}`;
  return `$${usd.toPrecision(3)}`;
}

/** A token (or any) count with thousands separators: 12,345. */
export function formatCount(n) {
  if (n == null || !Number.isFinite(n)) return "–";
  return Math.round(n).toLocaleString("en-US");
}

/** A large count shortened: 950, 12.3k, 4.5M. */
export function formatCompact(n) {
  if (n == null || !Number.isFinite(n)) return "–";
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (abs >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (abs >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return formatCount(n);
}

/** A share as a percentage: 0.0312 -> 3.1%. */
export function formatPercent(ratio) {
  if (ratio == null || !Number.isFinite(ratio)) return "–";
  return `${(ratio * 100).toFixed(ratio < 0.1 ? 1 : 0)}%`;
}

/** Milliseconds since the epoch of an RFC 3339 time from the API, keeping the fraction's sub-millisecond
 * digits (to about a microsecond: a double holds no more at today's epoch), which ``Date.parse`` drops. */
export function parseTime(text) {
  const match = /^(.*T\d\d:\d\d:\d\d)\.(\d+)(Z|[+-]\d\d:\d\d)$/.exec(String(text));
  if (!match) return Date.parse(text);
  return Date.parse(match[1] + match[3]) + Number(`0.${match[2]}`) * 1000;
}

/** A wall-clock time in the viewer's zone: 2026-01-02 15:04:05.123. */
export function formatTime(value) {
  const ms = typeof value === "number" ? value : parseTime(value);
  if (!Number.isFinite(ms)) return "–";
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
  );
}

/** How long ago a time was: 5 s ago, 3 min ago, 2 h ago, 4 d ago. */
export function formatAgo(value, now = Date.now()) {
  const ms = typeof value === "number" ? value : parseTime(value);
  if (!Number.isFinite(ms)) return "–";
  const s = Math.max(0, (now - ms) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** An attribute value as display text: objects and arrays as compact JSON. */
export function formatValue(value) {
  if (value == null) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** Text cut to ``max`` characters with an ellipsis. */
export function truncate(text, max = 120) {
  const s = String(text ?? "");
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** Build an element: h("td", {class: "num", title: "…"}, "text", childNode, …). Strings become text nodes. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
