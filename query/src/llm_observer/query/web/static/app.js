// The web view's shell: the router over the URL hash, the navigation, sign-in and the theme.
//
// A route is ``#/<page>/<arg>…?<query>``; the query holds every filter, so a URL can be shared. Each page
// is a module in pages/ exporting ``render(root, params)`` which returns (or resolves to) a cleanup
// function; ``params`` is ``{page, args, query, setQuery}``: ``args`` the path segments after the page name,
// ``query`` a URLSearchParams, ``setQuery(object, {replace})`` rewrites the URL's query (keys with empty
// values are dropped) and re-renders. When ``render`` settles, ``main`` gets ``data-ready`` (tests wait
// for it).

import { postJson, setToken, showMessage, token } from "./api.js";

const PAGES = {
  traces: "./pages/traces.js",
  trace: "./pages/trace.js",
  dashboards: "./pages/dashboards.js",
  sessions: "./pages/sessions.js",
  users: "./pages/users.js",
  live: "./pages/live.js",
  search: "./pages/search.js",
  alerts: "./pages/alerts.js",
  insights: "./pages/placeholder.js",
};
// The page a route highlights in the navigation.
const NAV_OF = { trace: "traces", sessions: "traces", users: "traces" };
const THEME_KEY = "llm-observer.theme";

const view = document.getElementById("view");
let cleanup = null;
let generation = 0;

/** The current route: ``{page, args, query}`` from ``#/page/arg?query``. */
export function currentRoute() {
  const hash = window.location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = hash.split("?", 2);
  const segments = path.split("/").filter(Boolean).map(decodeURIComponent);
  const page = segments.length && PAGES[segments[0]] ? segments[0] : "traces";
  return { page, args: segments.slice(1), query: new URLSearchParams(search) };
}

/** ``#/page/args?query`` for a page, its arguments and an object of parameters (empty values dropped). */
export function routeHref(page, args = [], query = {}) {
  const params = new URLSearchParams();
  const entries = query instanceof URLSearchParams ? [...query.entries()] : Object.entries(query);
  for (const [key, value] of entries) {
    if (value == null || value === "") continue;
    if (Array.isArray(value)) value.forEach((item) => params.append(key, item));
    else params.append(key, String(value));
  }
  const path = [page, ...args.map(encodeURIComponent)].join("/");
  const search = params.toString();
  return `#/${path}${search ? `?${search}` : ""}`;
}

function highlight(page) {
  const active = NAV_OF[page] || page;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.route === active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  const mine = ++generation;
  if (typeof cleanup === "function") {
    try {
      cleanup();
    } catch (error) {
      console.warn("a page's cleanup failed", error);
    }
  }
  cleanup = null;
  showMessage("");
  const { page, args, query } = currentRoute();
  highlight(page);
  view.removeAttribute("data-ready");
  view.dataset.page = page;
  view.replaceChildren();
  const setQuery = (values, { replace = false } = {}) => {
    const href = routeHref(page, args, values);
    if (replace) window.history.replaceState(null, "", href);
    else window.history.pushState(null, "", href);
    route();
  };
  try {
    const module = await import(PAGES[page]);
    if (mine !== generation) return;
    const result = await module.render(view, { page, args, query, setQuery });
    if (mine !== generation) {
      if (typeof result === "function") result();
      return;
    }
    cleanup = result;
  } catch (error) {
    if (mine !== generation) return;
    // An API failure has already said what went wrong; anything else is a fault of the page itself.
    if (!error || error.status === undefined) {
      console.error(error);
      showMessage(`This page failed: ${error && error.message}`);
    }
  }
  if (mine === generation) view.setAttribute("data-ready", "");
}

// --- sign-in ---------------------------------------------------------------------------------------

const signin = document.getElementById("signin");
const signout = document.getElementById("signout");

function askToSignIn(reason) {
  view.hidden = true;
  signin.hidden = false;
  signout.hidden = true;
  showMessage(reason || "");
  document.getElementById("api-key").focus();
  view.setAttribute("data-ready", "");
}

function signedIn() {
  signin.hidden = true;
  view.hidden = false;
  signout.hidden = !token();
  showMessage("");
  route();
}

window.addEventListener("llm-observer:signin", (event) => askToSignIn(event.detail));

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("api-key");
  setToken(input.value.trim());
  input.value = "";
  signedIn();
});

document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  try {
    const answer = await postJson("/api/v1/auth/login", {
      username: form.username.value,
      password: form.password.value,
    });
    form.password.value = "";
    setToken(answer.access_token);
    signedIn();
  } catch {
    // The message bar already says why (wrong password, too many attempts).
  }
});

signout.addEventListener("click", () => {
  setToken(null);
  askToSignIn("Signed out.");
});

// --- theme -----------------------------------------------------------------------------------------

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

document.getElementById("theme").addEventListener("click", () => {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === "dark"
    : window.matchMedia("(prefers-color-scheme: dark)").matches;
  const next = dark ? "light" : "dark";
  localStorage.setItem(THEME_KEY, next);
  applyTheme(next);
  window.dispatchEvent(new CustomEvent("llm-observer:theme"));
});

applyTheme(localStorage.getItem(THEME_KEY));
window.addEventListener("hashchange", route);
signout.hidden = !token();
route();
