// One trace: its totals, the span tree as a waterfall, and the selected span in detail.
//
// The waterfall draws only the rows in view (rows have one fixed height), so a trace of thousands of spans
// opens and scrolls as fast as one of ten. The tree is keyboard driven: ↑/↓ move, ←/→ collapse and expand
// (or go to the parent / first child), Home/End jump. The selected span is kept in the URL (?span=…) with
// history.replaceState, so a link opens the same span without the page reloading as the selection moves.

import { getJson, postJson } from "../api.js";
import { formatCost, formatCount, formatDuration, formatTime, formatValue, h, parseTime } from "../format.js";
import { parseMessages, renderMessages } from "./messages.js";
import { useStyles } from "./styles.js";

const ROW_HEIGHT = 28;
const OVERSCAN = 12;
const LLM_OPERATIONS = new Set(["chat", "text_completion", "generate_content", "embeddings", "completion"]);

/** What a span is, for its badge and colour: agent, tool, llm or span. */
export function spanRole(span) {
  const op = span.operation || span.attributes?.["gen_ai.operation.name"] || "";
  if (op === "invoke_agent" || op === "create_agent") return "agent";
  if (op === "execute_tool") return "tool";
  if (LLM_OPERATIONS.has(op) || span.request_model) return "llm";
  return "span";
}

/**
 * The spans as a forest: each node {span, children, depth}, children by start time. A span whose parent is
 * not in the trace (not received yet, or dropped) is shown as a root rather than hidden.
 */
export function buildTree(spans) {
  const nodes = new Map(spans.map((span) => [span.span_id, { span, children: [], depth: 0, parent: null }]));
  const roots = [];
  for (const node of nodes.values()) {
    const parent = node.span.parent_span_id ? nodes.get(node.span.parent_span_id) : null;
    if (parent && parent !== node) {
      node.parent = parent;
      parent.children.push(node);
    } else {
      roots.push(node);
    }
  }
  // The API's times are UTC with nine fraction digits: as strings they sort to the nanosecond.
  const byStart = (a, b) => compare(a.span.start_time, b.span.start_time) || compare(a.span.span_id, b.span.span_id);
  roots.sort(byStart);
  // Depths without recursion: a trace may be deep.
  const stack = [...roots];
  while (stack.length) {
    const node = stack.pop();
    node.children.sort(byStart);
    for (const child of node.children) {
      child.depth = node.depth + 1;
      stack.push(child);
    }
  }
  return roots;
}

function compare(x, y) {
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The trace's totals over its spans. */
export function traceTotals(spans) {
  let start = Infinity;
  let end = -Infinity;
  const totals = { spans: spans.length, llmCalls: 0, errors: 0, inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, reasoningTokens: 0, cost: 0, llmMs: 0 };
  for (const span of spans) {
    const s = parseTime(span.start_time);
    start = Math.min(start, s);
    end = Math.max(end, s + span.duration_ms);
    totals.inputTokens += span.input_tokens;
    totals.outputTokens += span.output_tokens;
    totals.cacheReadTokens += span.cache_read_tokens;
    totals.reasoningTokens += span.reasoning_tokens;
    totals.cost += span.cost_usd;
    if (span.status === "Error") totals.errors += 1;
    if (span.request_model) {
      totals.llmCalls += 1;
      totals.llmMs += span.duration_ms;
    }
  }
  totals.startMs = start;
  totals.durationMs = Math.max(0, end - start);
  return totals;
}

/** Draw ``#/trace/{id}?span=…``; resolves (to the cleanup) once the trace is shown. */
export async function render(root, { args, query }) {
  useStyles();
  const traceId = args[0] || "";
  const controller = new AbortController();
  let cleanupTree = () => {};
  root.replaceChildren(h("p", { role: "status" }, "Loading trace…"));
  try {
    const doc = await getJson(`/api/v1/traces/${encodeURIComponent(traceId)}`, {}, { signal: controller.signal });
    cleanupTree = draw(root, doc, query.get("span"));
  } catch (error) {
    root.replaceChildren(
      h("header", { class: "page-header" }, h("h1", {}, "Trace"), h("a", { href: "#/traces" }, "← All traces")),
      h("p", { class: "error-message", role: "alert" }, `Could not load trace ${traceId}: ${error.message ?? error}`),
    );
  }
  return () => {
    controller.abort();
    cleanupTree();
  };
}

function draw(root, doc, selectedId) {
  const spans = doc.spans;
  const totals = traceTotals(spans);
  const roots = buildTree(spans);
  const collapsed = new Set();
  let visible = [];
  let selected = spans.find((span) => span.span_id === selectedId) ?? roots[0]?.span ?? null;

  const header = h(
    "header",
    { class: "page-header" },
    h("h1", {}, roots[0]?.span.name ?? "Trace"),
    h("a", { href: "#/traces" }, "← All traces"),
    h("code", { class: "trace-id", title: "trace id" }, doc.trace_id),
    ...contextLinks(spans),
  );
  const stats = h(
    "dl",
    { class: "stats trace-totals", "data-testid": "trace-totals" },
    stat("Start", formatTime(totals.startMs)),
    stat("Duration", formatDuration(totals.durationMs)),
    stat("Spans", formatCount(totals.spans), "spans"),
    stat("LLM calls", formatCount(totals.llmCalls), "llm-calls"),
    stat("LLM time", formatDuration(totals.llmMs)),
    stat("Tokens in", formatCount(totals.inputTokens), "input-tokens"),
    stat("Tokens out", formatCount(totals.outputTokens), "output-tokens"),
    stat("Cost", formatCost(totals.cost), "cost"),
    stat("Errors", formatCount(totals.errors), "errors"),
  );

  const scale = h("div", { class: "wf-scale", "aria-hidden": "true" }, ...[0, 0.25, 0.5, 0.75, 1].map((f) => h("span", { style: `left:${f * 100}%` }, formatDuration(totals.durationMs * f))));
  const spacer = h("div", { class: "wf-spacer" });
  const viewport = h(
    "div",
    { class: "waterfall", role: "tree", tabindex: "0", "aria-label": `Spans of trace ${doc.trace_id}`, "data-testid": "waterfall" },
    spacer,
  );
  const detail = h("section", { class: "span-detail", "aria-label": "Selected span", "data-testid": "span-detail" });
  root.replaceChildren(
    header,
    stats,
    h("div", { class: "trace-layout" }, h("div", { class: "waterfall-pane" }, h("div", { class: "wf-head" }, h("span", {}, "Span"), scale), viewport), detail),
  );

  function flatten() {
    visible = [];
    const stack = [...roots].reverse();
    while (stack.length) {
      const node = stack.pop();
      visible.push(node);
      if (!collapsed.has(node.span.span_id)) {
        for (let i = node.children.length - 1; i >= 0; i -= 1) stack.push(node.children[i]);
      }
    }
    spacer.style.height = `${visible.length * ROW_HEIGHT}px`;
  }

  function row(node, index) {
    const span = node.span;
    const role = spanRole(span);
    const offset = totals.durationMs ? ((parseTime(span.start_time) - totals.startMs) / totals.durationMs) * 100 : 0;
    const width = totals.durationMs ? Math.max(0.3, (span.duration_ms / totals.durationMs) * 100) : 100;
    const hasChildren = node.children.length > 0;
    const isCollapsed = collapsed.has(span.span_id);
    const toggle = hasChildren
      ? h("button", { type: "button", class: "wf-toggle", tabindex: "-1", "aria-label": isCollapsed ? "Expand" : "Collapse", "data-toggle": span.span_id }, isCollapsed ? "▸" : "▾")
      : h("span", { class: "wf-toggle-space" });
    const label = [
      h("span", { class: `role role-${role}` }, role === "span" ? span.kind.toLowerCase() : role),
      h("span", { class: "wf-name", title: span.name }, span.name),
    ];
    if (span.request_model) label.push(h("span", { class: "wf-model" }, span.request_model));
    if (span.status === "Error") label.push(h("span", { class: "badge error" }, "error"));
    return h(
      "div",
      {
        class: `wf-row${span === selected ? " selected" : ""}${span.status === "Error" ? " row-error" : ""}`,
        role: "treeitem",
        "aria-level": String(node.depth + 1),
        "aria-expanded": hasChildren ? String(!isCollapsed) : null,
        "aria-selected": String(span === selected),
        "data-span-id": span.span_id,
        "data-depth": String(node.depth),
        style: `top:${index * ROW_HEIGHT}px;height:${ROW_HEIGHT}px`,
      },
      h("div", { class: "wf-label", style: `padding-left:${node.depth * 14 + 4}px` }, toggle, ...label),
      h(
        "div",
        { class: "wf-track" },
        h("div", { class: `wf-bar role-${role}`, style: `left:${offset}%;width:${Math.min(width, 100 - offset)}%` }),
        // The duration after the bar, or before it when the bar ends near the right edge.
        offset + width <= 88 || offset < 12
          ? h("span", { class: "wf-duration", style: `left:${Math.min(offset + width, 88)}%` }, formatDuration(span.duration_ms))
          : h("span", { class: "wf-duration before", style: `left:${offset}%` }, formatDuration(span.duration_ms)),
      ),
    );
  }

  let frame = 0;
  function paint() {
    frame = 0;
    const top = viewport.scrollTop;
    const height = viewport.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(visible.length, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
    const rows = [];
    for (let i = first; i < last; i += 1) rows.push(row(visible[i], i));
    spacer.replaceChildren(...rows);
  }
  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(paint);
  };

  function select(span, { scroll = true, focus = false } = {}) {
    selected = span;
    const url = new URL(location.href);
    const [route, query = ""] = url.hash.split("?");
    const search = new URLSearchParams(query);
    search.set("span", span.span_id);
    history.replaceState(history.state, "", `${route}?${search}`);
    showDetail(detail, span, totals);
    if (scroll) {
      const index = visible.findIndex((node) => node.span === span);
      if (index >= 0) {
        const top = index * ROW_HEIGHT;
        if (top < viewport.scrollTop) viewport.scrollTop = top;
        else if (top + ROW_HEIGHT > viewport.scrollTop + viewport.clientHeight) viewport.scrollTop = top + ROW_HEIGHT - viewport.clientHeight;
      }
    }
    paint();
    if (focus) viewport.focus();
  }

  function toggle(spanId, open) {
    const want = open ?? collapsed.has(spanId);
    if (want) collapsed.delete(spanId);
    else collapsed.add(spanId);
    flatten();
    paint();
  }

  viewport.addEventListener("scroll", schedule, { passive: true });
  viewport.addEventListener("click", (event) => {
    const button = event.target.closest("[data-toggle]");
    if (button) {
      toggle(button.dataset.toggle);
      return;
    }
    const item = event.target.closest(".wf-row");
    if (item) select(spans.find((span) => span.span_id === item.dataset.spanId), { scroll: false, focus: true });
  });
  viewport.addEventListener("keydown", (event) => {
    if (!selected) return;
    const index = visible.findIndex((node) => node.span === selected);
    const node = visible[index];
    let target = null;
    switch (event.key) {
      case "ArrowDown":
        target = visible[Math.min(visible.length - 1, index + 1)];
        break;
      case "ArrowUp":
        target = visible[Math.max(0, index - 1)];
        break;
      case "Home":
        target = visible[0];
        break;
      case "End":
        target = visible[visible.length - 1];
        break;
      case "ArrowRight":
        if (node.children.length && collapsed.has(node.span.span_id)) toggle(node.span.span_id, true);
        else if (node.children.length) target = node.children[0];
        break;
      case "ArrowLeft":
        if (node.children.length && !collapsed.has(node.span.span_id)) toggle(node.span.span_id, false);
        else if (node.parent) target = node.parent;
        break;
      case "Enter":
      case " ":
        if (node.children.length) toggle(node.span.span_id);
        break;
      default:
        return;
    }
    event.preventDefault();
    if (target) select(target.span);
  });

  flatten();
  if (selected) select(selected, { scroll: true });
  else paint();
  return () => {
    if (frame) cancelAnimationFrame(frame);
  };
}

/** Links to the session and user the trace's spans name (span attributes first, then the resource). */
function contextLinks(spans) {
  const first = (...keys) => {
    for (const span of spans) {
      for (const bag of [span.attributes, span.resource]) {
        for (const key of keys) if (bag?.[key]) return String(bag[key]);
      }
    }
    return null;
  };
  const session = first("gen_ai.conversation.id", "session.id");
  const user = first("user.id");
  return [
    session ? h("a", { href: `#/sessions/${encodeURIComponent(session)}`, "data-link": "session" }, `Session ${session}`) : null,
    user ? h("a", { href: `#/users/${encodeURIComponent(user)}`, "data-link": "user" }, `User ${user}`) : null,
  ];
}

function stat(label, value, testid) {
  return h("div", { class: "stat" }, h("dt", {}, label), h("dd", { "data-stat": testid ?? null }, value));
}

// --- the span panel -----------------------------------------------------------------------------------

const PARAMETERS = [
  ["gen_ai.request.temperature", "temperature"],
  ["gen_ai.request.top_p", "top_p"],
  ["gen_ai.request.top_k", "top_k"],
  ["gen_ai.request.max_tokens", "max_tokens"],
  ["gen_ai.request.frequency_penalty", "frequency_penalty"],
  ["gen_ai.request.presence_penalty", "presence_penalty"],
  ["gen_ai.request.seed", "seed"],
  ["gen_ai.request.stop_sequences", "stop"],
  ["gen_ai.request.choice.count", "n"],
  ["gen_ai.request.stream", "stream"],
];

function showDetail(panel, span, totals) {
  const a = span.attributes || {};
  const role = spanRole(span);
  const parts = [
    h(
      "header",
      { class: "span-header" },
      h("h2", {}, h("span", { class: `role role-${role}` }, role === "span" ? span.kind.toLowerCase() : role), " ", span.name),
      h(
        "p",
        { class: "muted" },
        `${formatTime(span.start_time)} · ${formatDuration(span.duration_ms)} · ${span.service_name} · `,
        h("code", {}, span.span_id),
      ),
    ),
  ];
  if (span.status === "Error") parts.push(errorBlock(span));

  if (role === "llm" || span.input_tokens || span.output_tokens) {
    const facts = [
      ["Provider", span.provider],
      ["Model", span.request_model],
      ["Response model", span.response_model !== span.request_model ? span.response_model : null],
      ["Finish reason", formatReasons(a["gen_ai.response.finish_reasons"])],
      ["TTFT", typeof a["gen_ai.response.time_to_first_chunk"] === "number" ? formatDuration(a["gen_ai.response.time_to_first_chunk"] * 1000) : null],
      ["Parameters", PARAMETERS.filter(([key]) => a[key] != null).map(([key, name]) => `${name}=${formatValue(a[key])}`).join(", ") || null],
    ].filter(([, value]) => value != null && value !== "");
    parts.push(h("dl", { class: "facts" }, facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
    parts.push(tokenBlock(span), costBlock(span, totals));
  }

  const conversation = conversationOf(span);
  if (conversation.length) {
    parts.push(h("section", { class: "conversation", "aria-label": "Conversation" }, h("h3", {}, "Conversation"), renderMessages(conversation)));
  } else if (role === "tool") {
    const args = a["gen_ai.tool.call.arguments"];
    const result = a["gen_ai.tool.call.result"];
    if (args != null || result != null) {
      parts.push(
        h(
          "section",
          { class: "conversation" },
          h("h3", {}, "Tool call"),
          args != null ? h("pre", { class: "code" }, formatValue(args)) : null,
          result != null ? h("pre", { class: "code" }, formatValue(result)) : null,
        ),
      );
    }
  }
  if (role === "llm" && REPLAYABLE.has(span.operation)) parts.push(replayBlock(span));
  parts.push(attributeTable(span));
  panel.replaceChildren(...parts);
}

const REPLAYABLE = new Set(["chat", "text_completion", "generate_content"]);

/**
 * "Replay": re-issue this call (optionally with another model) through ``POST /api/v1/traces/{id}/replay``
 * and show what changed — the answer as a diff, tokens, cost and latency — with a link to the new trace.
 */
function replayBlock(span) {
  const result = h("div", { class: "replay-result", "data-testid": "replay-result", "aria-live": "polite" });
  if (span.attributes?.["gen_ai.input.messages"] == null) {
    return h(
      "section",
      { class: "replay", "aria-label": "Replay", "data-testid": "replay" },
      h("h3", {}, "Replay"),
      h("p", { class: "muted" }, "The prompt of this call was not captured, so it cannot be replayed."),
    );
  }
  const model = h("input", {
    type: "text",
    name: "model",
    placeholder: span.request_model || "model",
    "aria-label": "Model to replay with (empty: the same)",
    "data-testid": "replay-model",
  });
  const button = h("button", { type: "submit", "data-testid": "replay-button" }, "Replay");
  async function submit(event) {
    event.preventDefault();
    button.disabled = true;
    result.replaceChildren(h("p", { role: "status" }, "Replaying…"));
    const body = { span_id: span.span_id };
    if (model.value.trim()) body.model = model.value.trim();
    try {
      const answer = await postJson(`/api/v1/traces/${encodeURIComponent(span.trace_id)}/replay`, body);
      result.replaceChildren(replayAnswer(answer));
      result.scrollIntoView({ block: "nearest" });
    } catch (error) {
      result.replaceChildren(h("p", { class: "error-message", role: "alert" }, `Replay failed: ${error.message ?? error}`));
    } finally {
      button.disabled = false;
    }
  }
  return h(
    "section",
    { class: "replay", "aria-label": "Replay", "data-testid": "replay" },
    h("h3", {}, "Replay"),
    h("form", { class: "replay-form", onsubmit: submit }, model, " ", button),
    result,
  );
}

const DIFF_STYLES = { "+": "background:rgba(46,160,67,.18)", "-": "background:rgba(248,81,73,.18)" };

function replayAnswer(answer) {
  const parts = [
    h(
      "p",
      {},
      "New trace: ",
      h("a", { href: `#/trace/${answer.replay_trace_id}`, "data-link": "replay-trace" }, answer.replay_trace_id),
      answer.exported ? null : h("span", { class: "badge error" }, "not stored"),
    ),
  ];
  for (const call of answer.calls) {
    if (!call.replay) {
      parts.push(h("p", { class: "error-message", role: "alert" }, `Replay of ${call.name} failed: ${call.error}`));
      continue;
    }
    const lines = call.output_diff.split("\n").filter((line, i, all) => line || i < all.length - 1);
    parts.push(
      call.output_changed
        ? h(
            "pre",
            { class: "code replay-diff", "data-testid": "replay-diff" },
            ...lines.map((line) => {
              const sign = line.startsWith("+++") || line.startsWith("---") ? "" : line[0];
              return h("span", { style: DIFF_STYLES[sign] ?? null, "data-diff": sign === "+" ? "add" : sign === "-" ? "remove" : null }, line + "\n");
            }),
          )
        : h("p", { class: "muted", "data-testid": "replay-diff" }, "The answer is the same."),
    );
    const o = call.original;
    const r = call.replay;
    const rows = [
      ["Model", o.response_model || o.model, r.response_model || r.model, null, "model"],
      ["Input tokens", formatCount(o.input_tokens), formatCount(r.input_tokens), signed(call.input_tokens_delta, formatCount), "input"],
      ["Output tokens", formatCount(o.output_tokens), formatCount(r.output_tokens), signed(call.output_tokens_delta, formatCount), "output"],
      ["Cost", costOrNone(o.cost_usd), costOrNone(r.cost_usd), signed(call.cost_delta_usd, formatCost), "cost"],
      ["Latency", formatDuration(o.latency_ms), formatDuration(r.latency_ms), signed(call.latency_delta_ms, formatDuration), "latency"],
    ];
    parts.push(
      h(
        "table",
        { class: "data replay-table", "data-testid": "replay-table" },
        h("thead", {}, h("tr", {}, ...["", "Original", "Replay", "Change"].map((title) => h("th", { scope: "col" }, title)))),
        h(
          "tbody",
          {},
          ...rows.map(([label, before, after, change, key]) =>
            h("tr", { "data-replay": key }, h("th", { scope: "row" }, label), h("td", {}, before), h("td", {}, after), h("td", {}, change ?? "")),
          ),
        ),
      ),
    );
  }
  return h("div", {}, ...parts);
}

function costOrNone(usd) {
  return usd == null ? "n/a" : formatCost(usd);
}

function signed(value, format) {
  if (value == null) return "n/a";
  return (value > 0 ? "+" : value < 0 ? "−" : "±") + format(Math.abs(value));
}

function formatReasons(value) {
  if (value == null) return null;
  return Array.isArray(value) ? value.join(", ") : String(value);
}

function errorBlock(span) {
  const exceptions = (span.events || []).filter((event) => event.name === "exception");
  return h(
    "div",
    { class: "error-message", role: "note" },
    h("strong", {}, "Error"),
    span.status_message ? h("p", {}, span.status_message) : null,
    span.attributes?.["error.type"] ? h("p", {}, `type: ${span.attributes["error.type"]}`) : null,
    ...exceptions.map((event) =>
      h(
        "details",
        {},
        h("summary", {}, `${event.attributes["exception.type"] ?? "exception"}: ${event.attributes["exception.message"] ?? ""}`),
        event.attributes["exception.stacktrace"] ? h("pre", { class: "code" }, event.attributes["exception.stacktrace"]) : null,
      ),
    ),
  );
}

function tokenBlock(span) {
  const rows = [
    ["Input", span.input_tokens, "input"],
    ["Output", span.output_tokens, "output"],
    ["Cache read", span.cache_read_tokens, "cache-read"],
    ["Cache write", span.cache_write_tokens, "cache-write"],
    ["Reasoning", span.reasoning_tokens, "reasoning"],
  ];
  return h(
    "section",
    { class: "tokens" },
    h("h3", {}, "Tokens"),
    h("dl", { class: "facts" }, rows.flatMap(([label, n, key]) => [h("dt", {}, label), h("dd", { "data-tokens": key }, formatCount(n))])),
  );
}

function costBlock(span) {
  const a = span.attributes || {};
  const perMillion = (usd, tokens) => (typeof usd === "number" && tokens ? ` ($${((usd / tokens) * 1e6).toFixed(2)} / 1M tokens)` : "");
  const lines = [
    ["Input", a["llm_observer.cost.input_usd"], span.input_tokens - span.cache_read_tokens],
    ["Output", a["llm_observer.cost.output_usd"], span.output_tokens],
    ["Cache read", a["llm_observer.cost.cache_read_usd"], span.cache_read_tokens],
    ["Cache write", a["llm_observer.cost.cache_write_usd"], span.cache_write_tokens],
  ].filter(([, usd]) => typeof usd === "number");
  const source = a["llm_observer.cost.source"];
  return h(
    "section",
    { class: "cost" },
    h("h3", {}, "Cost"),
    h("p", { class: "cost-total", "data-cost": String(span.cost_usd) }, formatCost(span.cost_usd)),
    lines.length
      ? h("dl", { class: "facts" }, lines.flatMap(([label, usd, tokens]) => [h("dt", {}, label), h("dd", {}, formatCost(usd) + perMillion(usd, tokens))]))
      : null,
    h(
      "p",
      { class: "muted" },
      source === "provided"
        ? "Price basis: the cost the application reported."
        : source === "computed"
          ? `Price basis: the price table for ${span.response_model || span.request_model} × the tokens above.`
          : span.cost_usd
            ? "Price basis: not recorded."
            : "No price known for this model.",
    ),
  );
}

/** The span's conversation: system instructions, then the input messages, then the output messages. */
export function conversationOf(span) {
  const a = span.attributes || {};
  const out = [];
  const system = parseMessages(a["gen_ai.system_instructions"], "system");
  out.push(...system);
  out.push(...parseMessages(a["gen_ai.input.messages"], "user"));
  out.push(...parseMessages(a["gen_ai.output.messages"], "assistant").map((m) => ({ ...m, output: true })));
  return out;
}

function attributeTable(span) {
  const entries = [
    ...Object.entries(span.attributes || {}).map(([k, v]) => ["span", k, v]),
    ...Object.entries(span.resource || {}).map(([k, v]) => ["resource", k, v]),
    ...(span.events || []).map((event, i) => ["event", `${i}: ${event.name}`, event.attributes]),
  ];
  const search = h("input", { type: "search", placeholder: "Filter attributes", "aria-label": "Filter attributes", class: "attr-search" });
  const body = h("tbody");
  const drawRows = () => {
    const needle = search.value.trim().toLowerCase();
    body.replaceChildren(
      ...entries
        .filter(([, k, v]) => !needle || k.toLowerCase().includes(needle) || formatValue(v).toLowerCase().includes(needle))
        .map(([scope, k, v]) => h("tr", {}, h("td", { class: "muted" }, scope), h("td", {}, h("code", {}, k)), h("td", { class: "attr-value" }, formatValue(v)))),
    );
  };
  search.addEventListener("input", drawRows);
  drawRows();
  return h(
    "section",
    { class: "attributes" },
    h("h3", {}, `Attributes (${entries.length})`),
    search,
    h("table", { class: "data attr-table" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, ""), h("th", { scope: "col" }, "Key"), h("th", { scope: "col" }, "Value"))), body),
  );
}
