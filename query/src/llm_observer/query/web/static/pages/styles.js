// The trace, session and user pages' own stylesheet (waterfall, chat bubbles, span panel), linked once
// beside the shell's style.css and built on its colour variables, so light and dark both apply.

const HREF = new URL("../trace-views.css", import.meta.url).href;

export function useStyles() {
  if (document.querySelector(`link[href="${HREF}"]`)) return;
  document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href: HREF }));
}
