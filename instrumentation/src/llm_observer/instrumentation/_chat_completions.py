"""Reading OpenAI-shaped chat completions, shared by the providers whose SDKs answer in that shape (Hugging
Face, Mistral): the ``usage`` block, and what a stream of chunks keeps (``choices[i].delta``,
``finish_reason`` per choice).

For streams a provider subclasses :class:`ChatChunkState`: it reads its chunks in ``on_chunk`` (keeping references,
and text and tool-call fragments only when content is captured) and says how its usage, finish reasons
and per-choice parts read; the base fills the call when the stream ends.
"""

from __future__ import annotations

from typing import Any

from llm_observer.instrumentation._content import Part, message
from llm_observer.instrumentation._util import get, integer
from llm_observer.instrumentation.handler import LLMCall


def chat_usage(call: LLMCall, usage: Any) -> None:
    """Input and output tokens from a ``usage`` block (``prompt_tokens``, ``completion_tokens``): those
    that are integers; nothing for None."""
    if usage is None:
        return
    prompt = integer(get(usage, "prompt_tokens"))
    completion = integer(get(usage, "completion_tokens"))
    if prompt is not None:
        call.input_tokens = prompt
    if completion is not None:
        call.output_tokens = completion


class ChatChunkState:
    """Per stream: the first chunk (id, model), the last usage and finish reasons by choice index; text
    and tool-call fragments by choice index only when content is captured (``texts``/``tools`` are None
    otherwise). A :class:`~llm_observer.instrumentation._streams.StreamState`."""

    __slots__ = ("first", "reasons", "texts", "tools", "usage")

    def __init__(self, capture: bool) -> None:
        self.first: Any = None
        self.usage: Any = None
        self.reasons: dict[int, str] = {}
        #: Per choice index: the text pieces (what a piece is is the provider's choice).
        self.texts: dict[int, list[Any]] | None = {} if capture else None
        #: Per choice index, per tool-call key: ``[id, name, [argument pieces]]``.
        self.tools: dict[int, dict[int, list[Any]]] | None = {} if capture else None

    def on_chunk(self, chunk: Any) -> None:
        """Look at one chunk (override)."""

    def _usage(self, call: LLMCall, usage: Any) -> None:
        """Copy the kept usage block (None when none came) into ``call`` (override)."""

    def _finish_reason(self, reason: Any) -> str:
        """The output message's ``finish_reason`` for a provider reason (None when none came)."""
        return str(reason or "")

    def _parts(self, texts: list[Any], tools: dict[int, list[Any]]) -> list[Part]:
        """The output parts of one choice from its text pieces and tool-call slots (override)."""
        return []

    def finish(self, call: LLMCall) -> None:
        """Response id and model from the first chunk, usage, finish reasons and (when captured) one
        assistant message per choice."""
        if self.first is not None:
            call.response_id = get(self.first, "id") or None
            call.response_model = get(self.first, "model") or None
        self._usage(call, self.usage)
        if self.reasons:
            call.finish_reasons = [self.reasons[index] for index in sorted(self.reasons)]
        if self.texts is not None and self.tools is not None:
            call.output_messages = [
                message(
                    "assistant",
                    self._parts(self.texts.get(index, []), self.tools.get(index, {})),
                    finish_reason=self._finish_reason(self.reasons.get(index)),
                )
                for index in sorted(set(self.texts) | set(self.tools) | set(self.reasons))
            ]
