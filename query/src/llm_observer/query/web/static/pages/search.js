// Search by meaning over stored prompts (or answers): /api/v1/search/semantic; each hit opens its trace.

import { getJson } from "../api.js";
import { routeHref } from "../app.js";
import { formatTime, h, truncate } from "../format.js";

export async function render(root, params) {
  const q = params.query.get("q") || "";
  const kind = params.query.get("kind") || "prompt";
  const k = params.query.get("k") || "20";
  const input = h("input", { type: "search", name: "q", value: q, size: 60, "aria-label": "Search text",
    placeholder: "e.g. reset my password" });
  const kindSelect = h("select", { name: "kind", "aria-label": "Search in" },
    ...["prompt", "output", "all"].map((value) =>
      h("option", { value, selected: value === kind }, value === "all" ? "prompts and answers" : `${value}s`)));
  const form = h("form", { class: "toolbar", role: "search" },
    h("label", {}, "Meaning to look for", input),
    h("label", {}, "In", kindSelect),
    h("button", { type: "submit", class: "primary" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    params.setQuery({ q: input.value.trim(), kind: kindSelect.value });
  });
  const results = h("div", { id: "search-results" });
  root.append(h("h1", {}, "Search by meaning"), form, results);
  if (!q) {
    results.append(h("p", { class: "muted" },
      "Finds the prompts nearest in meaning to what you type, not only those with the same words."));
    input.focus();
    return () => {};
  }
  const answer = await getJson("/api/v1/search/semantic", { q, kind, k });
  const hits = answer.results || [];
  if (!hits.length) {
    results.append(h("p", {}, "Nothing stored is near that in meaning."));
    return () => {};
  }
  results.append(h("ol", { class: "hits" }, ...hits.map((hit) => {
    const score = typeof hit.score === "number" ? hit.score.toFixed(3) : "";
    const text = hit.text ?? hit.prompt ?? hit.input ?? hit.output ?? "";
    return h("li", { dataset: { traceId: hit.trace_id || "" } },
      h("a", { href: routeHref("trace", [hit.trace_id], { span: hit.span_id }) },
        truncate(hit.span_name || hit.name || `trace ${hit.trace_id}`, 80)),
      h("div", { class: "text" }, truncate(text, 400)),
      h("div", { class: "muted" },
        [hit.model, hit.service_name, hit.start_time ? formatTime(hit.start_time) : null,
          score ? `similarity ${score}` : null].filter(Boolean).join(" · ")));
  })));
  return () => {};
}
