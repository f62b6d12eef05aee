// Insights: its place in the view, until the analytics features that fill it exist.

import { h } from "../format.js";

const TEXT = {
  insights: {
    title: "Insights",
    body: "Findings about your LLM traffic (cost anomalies, slow or failing models, prompts that repeat) " +
      "will be shown here once the analytics features exist. The Dashboards page has the numbers today.",
  },
};

export function render(root, params) {
  const text = TEXT[params.page] || TEXT.insights;
  root.append(
    h("section", { class: "placeholder" },
      h("h1", {}, text.title),
      h("p", {}, h("strong", {}, "Coming soon. ")),
      h("p", { class: "muted" }, text.body),
      h("p", {}, h("a", { href: "#/dashboards" }, "Open the dashboards"))),
  );
  return () => {};
}
