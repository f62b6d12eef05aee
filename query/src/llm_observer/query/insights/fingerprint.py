"""Prompt templates from rendered prompts: the variable parts masked, and a short stable fingerprint.

Applications render a template (``"Summarise order {id} for {email}: {text}"``) into each prompt they send;
a change to the template is a new prompt version. Where spans carry no version attribute, the template is
recovered from the prompt itself by masking what varies between renderings, in this order:

1. fenced code blocks (```` ``` … ``` ````) → ``<CODE>``
2. URLs (``scheme://…``, ``www.…``) → ``<URL>``
3. e-mail addresses → ``<EMAIL>``
4. ids → ``<ID>``: UUIDs, runs of 8 or more hex digits holding a digit, and words of 6 or more characters
   mixing letters and digits (``ORD-2024-118``, ``sk_live_4f9a``, ``A12B34``)
5. quoted strings → ``<STR>``: ``"…"``, ``“…”``, ``«…»``, ```…```, and ``'…'`` when the quotes stand
   apart from letters (so that apostrophes are left alone); at most 300 characters, on one line
6. numbers → ``<NUM>``: integers, decimals, thousands separators, signs, percentages, and the numeric
   parts of dates and times (``2026-01-02`` → ``<NUM>-<NUM>-<NUM>``)
7. long variable tails → ``<TAIL>``: after the last label that ends a line (``Text:``, ``Document:`` …
   followed by a line break) or the last opening tag on a line of its own (``<document>``), what follows
   is the template's slot when it is longer than ``TAIL_CHARS`` characters; and a message longer than
   ``MAX_MESSAGE_CHARS`` after masking is cut there with ``<TAIL>``.

Whitespace runs become one space; letter case is kept. The prompt text masked is the system part
(``gen_ai.system_instructions`` and system messages) and the first user message: later turns of a
conversation and assistant or tool messages are the conversation, not the template. An OpenInference
template attribute (``llm.prompt_template.template``) is used as it is, masked the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

TAIL_CHARS = 80
MAX_MESSAGE_CHARS = 1000
FINGERPRINT_HEX = 16

_CODE = re.compile(r"```.*?(?:```|\Z)", re.S)
_URL = re.compile(r"\b(?:[a-z][a-z0-9+.-]*://|www\.)[^\s<>\"'`]+", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_HEX = re.compile(r"\b(?=[0-9a-f]*[0-9])[0-9a-f]{8,}\b", re.I)
# A word of letters, digits, '-' and '_' holding both a letter and a digit, 6 characters or more.
_MIXED = re.compile(r"\b(?=[\w-]*[A-Za-z])(?=[\w-]*\d)[A-Za-z0-9][\w-]{4,}[A-Za-z0-9]\b")
_QUOTED = re.compile(
    r"\"[^\"\n]{0,300}\"|“[^”\n]{0,300}”|«[^»\n]{0,300}»|`[^`\n]{0,300}`|(?<![\w'])'[^'\n]{0,300}'(?![\w'])"
)
_NUMBER = re.compile(r"(?<![\w<])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?(?![\w>])")
_TAIL_LABEL = re.compile(r"(?:[^\n]*:[ \t]*|[ \t]*<[A-Za-z][\w-]*>[ \t]*)\n")
_SPACES = re.compile(r"\s+")


def mask(text: str) -> str:
    """``text`` with its variable parts masked (rules 1 to 7 of the module docstring), whitespace collapsed."""
    out = _CODE.sub("<CODE>", text)
    out = _URL.sub("<URL>", out)
    out = _EMAIL.sub("<EMAIL>", out)
    out = _UUID.sub("<ID>", out)
    out = _HEX.sub("<ID>", out)
    out = _MIXED.sub("<ID>", out)
    out = _QUOTED.sub("<STR>", out)
    out = _NUMBER.sub("<NUM>", out)
    out = _mask_tail(out)
    out = _SPACES.sub(" ", out).strip()
    if len(out) > MAX_MESSAGE_CHARS:
        out = out[:MAX_MESSAGE_CHARS].rstrip() + " <TAIL>"
    return out


def _mask_tail(text: str) -> str:
    # Before whitespace is collapsed: a label is recognised by the line break that ends it.
    last = None
    for found in _TAIL_LABEL.finditer(text):
        last = found
    if last is None:
        return text
    tail = text[last.end() :]
    if len(tail.strip()) > TAIL_CHARS:
        return text[: last.end()] + "<TAIL>"
    return text


def fingerprint(template: str) -> str:
    """The fingerprint of a masked template: 16 hex digits of its blake2b hash."""
    return hashlib.blake2b(
        template.encode("utf-8", "surrogatepass"), digest_size=FINGERPRINT_HEX // 2
    ).hexdigest()


# --- the text a template is recovered from -------------------------------------------------------------


def _parse(raw: str) -> Any:
    stripped = raw.lstrip()
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict) and part.get("type", "text") in ("text", "input_text"):
        for key in ("content", "text"):
            value = part.get(key)
            if isinstance(value, str):
                return value
    return ""


def _message_text(message: dict[str, Any]) -> str:
    for key in ("parts", "content"):
        value = message.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return "\n".join(text for text in (_part_text(p) for p in value) if text)
    return ""


def _messages(value: Any) -> Iterable[tuple[str | None, str]]:
    """``(role, text)`` of each message of a parsed content attribute (current ``parts`` format, the older
    ``content`` one, a request body holding ``messages``, or a bare string)."""
    if isinstance(value, str):
        yield None, value
    elif isinstance(value, dict):
        if isinstance(value.get("messages"), list):
            yield from _messages(value["messages"])
        else:
            role = value.get("role")
            yield (role if isinstance(role, str) else None), _message_text(value)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                yield None, item
            elif isinstance(item, dict):
                role = item.get("role")
                yield (role if isinstance(role, str) else None), _message_text(item)


def template_source(input_messages: str, system_instructions: str = "") -> list[str]:
    """The texts a template is recovered from: the system part, then the first user message (a message
    without a role counts as the user's)."""
    texts: list[str] = []
    if system_instructions:
        texts += [text for _, text in _messages(_parse(system_instructions)) if text]
    first_user = ""
    for role, text in _messages(_parse(input_messages)) if input_messages else ():
        if not text:
            continue
        if role in ("system", "developer"):
            texts.append(text)
        elif role in (None, "user") and not first_user:
            first_user = text
    if first_user:
        texts.append(first_user)
    return texts


def prompt_template(input_messages: str, system_instructions: str = "", template: str = "") -> str:
    """The masked template of one prompt: ``template`` (an explicit template attribute) when given, else
    the system part and first user message of the prompt, each masked, one per line. Empty when the span
    carries no prompt text."""
    if template:
        return mask(template)
    return "\n".join(mask(text) for text in template_source(input_messages, system_instructions))
