// Every request of the web view goes through here: it adds the caller's credential (an API key or a login
// token, kept in this tab's session storage) and turns a failure into a message the person sees.

const TOKEN_KEY = "llm-observer.token";

/** An API failure: ``status`` (0 for the network), ``code`` and ``message`` from the JSON error body. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function authHeaders() {
  const value = token();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

/** Show ``text`` in the page's message bar (empty: hide it). */
export function showMessage(text) {
  const bar = document.getElementById("message");
  if (!bar) return;
  bar.textContent = text || "";
  bar.hidden = !text;
}

/** ``/api/v1/traces`` + ``{model: "gpt-4o"}`` → the URL with the non-empty parameters. */
export function apiUrl(path, params = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value == null || value === "") continue;
    if (Array.isArray(value)) value.forEach((item) => url.searchParams.append(key, item));
    else url.searchParams.set(key, String(value));
  }
  return url;
}

async function failure(response) {
  let code = "error";
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch {
    // Not our JSON error format: keep the status line.
  }
  if (response.status === 401) {
    setToken(null);
    window.dispatchEvent(new CustomEvent("llm-observer:signin", { detail: message }));
  }
  return new ApiError(response.status, code, message);
}

/** A raw authenticated request (``fetch`` options merged), failing with ``ApiError`` on a non-2xx answer. */
export async function request(path, params = {}, options = {}) {
  let response;
  try {
    response = await fetch(apiUrl(path, params), {
      ...options,
      headers: { Accept: "application/json", ...authHeaders(), ...(options.headers || {}) },
    });
  } catch (error) {
    if (options.signal && options.signal.aborted) throw error;
    const problem = new ApiError(0, "network", `The server cannot be reached: ${error.message}`);
    showMessage(problem.message);
    throw problem;
  }
  if (!response.ok) {
    const problem = await failure(response);
    if (problem.status !== 401) showMessage(problem.message);
    throw problem;
  }
  return response;
}

/** GET ``path`` with ``params`` and return the JSON body. */
export async function getJson(path, params = {}, options = {}) {
  const response = await request(path, params, options);
  return response.json();
}

/** POST a JSON body and return the JSON answer. */
export async function postJson(path, body, options = {}) {
  const response = await request(path, {}, {
    ...options,
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return response.json();
}

/**
 * Read a Server-Sent Events stream with the caller's credential (``EventSource`` cannot send one):
 * ``onEvent(name, data)`` for each event whose data is JSON; ``onOpen()`` once the server's first bytes
 * arrive (the tail sends a comment when it is in place). Resolves when the stream ends; abort it with
 * ``signal``.
 */
export async function readEvents(path, params, onEvent, signal, onOpen = () => {}) {
  const response = await request(path, params, { signal, headers: { Accept: "text/event-stream" } });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let opened = false;
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (error) {
      if (signal && signal.aborted) return;
      throw error;
    }
    if (chunk.done) return;
    if (!opened) {
      opened = true;
      onOpen();
    }
    buffer += chunk.value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}
