// A model call's messages as chat bubbles: system / user / assistant / tool, with tool calls and tool
// results as structured blocks rather than JSON text.
//
// Reads the GenAI conventions' message documents (`gen_ai.input.messages`, `gen_ai.output.messages`:
// [{role, parts: [{type: "text" | "tool_call" | "tool_call_response" | "reasoning", …}], finish_reason}],
// `gen_ai.system_instructions`: a list of parts) and the older chat-completions shape
// ([{role, content, tool_calls, tool_call_id}]) some instrumentations still write.

import { formatValue, h } from "../format.js";

/** Messages [{role, blocks, finishReason}] of a stored messages attribute; [] when there is none. */
export function parseMessages(raw, defaultRole) {
  if (raw == null || raw === "") return [];
  let value = raw;
  if (typeof raw === "string") {
    try {
      value = JSON.parse(raw);
    } catch {
      return [{ role: defaultRole, blocks: [{ type: "text", text: raw }] }];
    }
  }
  if (typeof value === "string") return [{ role: defaultRole, blocks: [{ type: "text", text: value }] }];
  if (!Array.isArray(value)) value = [value];
  // System instructions are a list of parts, not of messages.
  if (value.length && value.every((item) => item && typeof item === "object" && !("role" in item) && "type" in item)) {
    return [{ role: defaultRole, blocks: value.map(partBlock) }];
  }
  return value.map((message) => messageOf(message, defaultRole));
}

function messageOf(message, defaultRole) {
  if (message == null || typeof message !== "object") return { role: defaultRole, blocks: [{ type: "text", text: String(message) }] };
  const blocks = [];
  if (Array.isArray(message.parts)) blocks.push(...message.parts.map(partBlock));
  if (typeof message.content === "string" && message.content) blocks.push({ type: "text", text: message.content });
  else if (Array.isArray(message.content)) blocks.push(...message.content.map(partBlock));
  for (const call of message.tool_calls || []) {
    blocks.push({ type: "tool_call", id: call.id, name: call.function?.name ?? call.name, arguments: call.function?.arguments ?? call.arguments });
  }
  if (message.role === "tool" && message.tool_call_id && !blocks.some((b) => b.type === "tool_result")) {
    const text = blocks.filter((b) => b.type === "text").map((b) => b.text).join("\n");
    return { role: "tool", blocks: [{ type: "tool_result", id: message.tool_call_id, response: text }], finishReason: message.finish_reason };
  }
  return { role: message.role || defaultRole, blocks, finishReason: message.finish_reason };
}

function partBlock(part) {
  if (part == null || typeof part !== "object") return { type: "text", text: String(part) };
  switch (part.type) {
    case "text":
      return { type: "text", text: part.content ?? part.text ?? "" };
    case "tool_call":
      return { type: "tool_call", id: part.id, name: part.name, arguments: part.arguments };
    case "tool_call_response":
    case "tool_result":
      return { type: "tool_result", id: part.id, response: part.response ?? part.result ?? part.content };
    case "reasoning":
      return { type: "reasoning", text: part.content ?? "" };
    default:
      return { type: "other", value: part };
  }
}

/** Parse a tool call's arguments when they are a JSON string, so they print as an indented document. */
function pretty(value) {
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return value == null ? "" : JSON.stringify(value, null, 2);
}

function blockElement(block) {
  switch (block.type) {
    case "text":
      return h("div", { class: "msg-text" }, block.text);
    case "reasoning":
      return h("details", { class: "msg-reasoning" }, h("summary", {}, "Reasoning"), h("div", { class: "msg-text" }, block.text));
    case "tool_call":
      return h(
        "div",
        { class: "msg-tool-call", "data-block": "tool_call" },
        h("div", { class: "msg-block-title" }, "Tool call ", h("strong", {}, block.name || "?"), block.id ? h("code", {}, ` ${block.id}`) : null),
        h("pre", { class: "code" }, pretty(block.arguments)),
      );
    case "tool_result":
      return h(
        "div",
        { class: "msg-tool-result", "data-block": "tool_result" },
        h("div", { class: "msg-block-title" }, "Tool result", block.id ? h("code", {}, ` ${block.id}`) : null),
        h("pre", { class: "code" }, pretty(block.response)),
      );
    default:
      return h("pre", { class: "code" }, formatValue(block.value));
  }
}

/** The chat as a list of message bubbles (role label, blocks, finish reason of an answer). */
export function renderMessages(messages) {
  return h(
    "ol",
    { class: "messages" },
    messages.map((message) =>
      h(
        "li",
        { class: `msg msg-${message.role}${message.output ? " msg-output" : ""}`, "data-role": message.role },
        h("div", { class: "msg-role" }, message.role, message.output ? " (response)" : "", message.finishReason ? h("span", { class: "muted" }, ` · ${message.finishReason}`) : null),
        ...message.blocks.map(blockElement),
      ),
    ),
  );
}
