"""Rewrite one span's attributes to the current GenAI conventions (in place).

Rules (documented for users in the README):

* A current attribute already on the span always wins; legacy spellings only fill what is missing, so a
  second pass finds nothing to do (idempotent).
* Cache tokens: the conventions count cached tokens inside ``gen_ai.usage.input_tokens``. Anthropic's API
  reports them apart. Spans from OpenLLMetry (>= 0.33), OpenInference, the official OTel instrumentations and
  the Anthropic SDK's own spans already report the sum (checked by running them); OpenLIT reports Anthropic's
  raw ``input_tokens``. So the normaliser folds ``cache_read + cache_creation`` into input tokens when the
  provider is Anthropic and either the span comes from OpenLIT, or the reported input is smaller than the
  cache counts alone (which can only mean they were left out). The pre-fold count is kept in
  ``llm_observer.usage.uncached_input_tokens``, whose presence stops a second fold.
"""

from __future__ import annotations

import json
from typing import Any

from llm_observer.kernel.batch import Attributes, Event
from llm_observer.processors.normalize import messages as msg
from llm_observer.semconv import attributes as A
from llm_observer.semconv import genai_values as V
from llm_observer.semconv import mappings as M

_OPENLIT_SCOPE_PREFIX = "openlit."


def _first(attributes: Attributes, keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return value
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                return None
            return int(number) if number.is_integer() else None
    return None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def _operation(attributes: Attributes, name: str) -> str | None:
    request_type = attributes.get(M.LLM_REQUEST_TYPE)
    # OpenLLMetry names spans ``<vendor>.<operation>``; the name is more precise than llm.request.type
    # (its Anthropic messages spans say request type "completion" but are chat).
    vendor, dot, suffix = name.rpartition(".")
    if dot and vendor and request_type is not None and suffix in M.SPAN_NAME_SUFFIX_OPERATIONS:
        return M.SPAN_NAME_SUFFIX_OPERATIONS[suffix]
    if isinstance(request_type, str) and request_type.lower() in M.OPERATION_ALIASES:
        return M.OPERATION_ALIASES[request_type.lower()]
    kind = attributes.get(M.OPENINFERENCE_SPAN_KIND)
    if isinstance(kind, str) and kind.upper() in M.OPENINFERENCE_KIND_OPERATIONS:
        if kind.upper() == "LLM" and name in M.SPAN_NAME_OPERATIONS:
            return M.SPAN_NAME_OPERATIONS[name]
        return M.OPENINFERENCE_KIND_OPERATIONS[kind.upper()]
    kind = attributes.get(M.TRACELOOP_SPAN_KIND)
    if isinstance(kind, str) and kind.lower() in M.TRACELOOP_SPAN_KIND_OPERATIONS:
        return M.TRACELOOP_SPAN_KIND_OPERATIONS[kind.lower()]
    # The conventions' span name is ``{operation} {model}``.
    first_word, space, _ = name.partition(" ")
    if space and first_word in M.OPERATIONS:
        return first_word
    if dot and suffix in M.SPAN_NAME_SUFFIX_OPERATIONS and _first(attributes, M.PROVIDER_SOURCES):
        return M.SPAN_NAME_SUFFIX_OPERATIONS[suffix]
    return None


def _provider(attributes: Attributes) -> str | None:
    value = _first(attributes, M.PROVIDER_SOURCES)
    if isinstance(value, str):
        return M.provider_alias(value)
    provider = attributes.get(M.OI_LLM_PROVIDER)
    system = attributes.get(M.OI_LLM_SYSTEM)
    if isinstance(provider, str) and isinstance(system, str):
        combined = M.OI_PROVIDER_SYSTEM.get((provider.lower(), system.lower()))
        if combined is not None:
            return combined
    if isinstance(provider, str) and provider:
        return M.provider_alias(provider)
    if isinstance(system, str) and system:
        return M.provider_alias(system)
    return None


def _invocation_parameters(attributes: Attributes) -> dict[str, Any]:
    raw = _first(attributes, M.OI_INVOCATION_PARAMETERS)
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return raw if isinstance(raw, dict) else {}


def _usage(attributes: Attributes, present: frozenset[str], provider: str | None, scope_name: str) -> None:
    for target, sources in _USAGE_TARGETS:
        for key in sources:
            if key in present:
                value = _int(attributes[key])
                if value is not None:
                    attributes[target] = value
                    break
    if provider != V.PROVIDER_ANTHROPIC or M.USAGE_UNCACHED_INPUT_TOKENS in present:
        return
    reported = _int(attributes.get(A.GEN_AI_USAGE_INPUT_TOKENS))
    cached = (_int(attributes.get(A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)) or 0) + (
        _int(attributes.get(A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)) or 0
    )
    if reported is None or not cached:
        return
    from_openlit = (
        scope_name.startswith(_OPENLIT_SCOPE_PREFIX) or attributes.get("telemetry.sdk.name") == "openlit"
    )
    if from_openlit or reported < cached:
        attributes[M.USAGE_UNCACHED_INPUT_TOKENS] = reported
        attributes[A.GEN_AI_USAGE_INPUT_TOKENS] = reported + cached


_USAGE_TARGETS = (
    (A.GEN_AI_USAGE_INPUT_TOKENS, M.INPUT_TOKENS_SOURCES),
    (A.GEN_AI_USAGE_OUTPUT_TOKENS, M.OUTPUT_TOKENS_SOURCES),
    (A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, M.CACHE_READ_SOURCES),
    (A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, M.CACHE_CREATION_SOURCES),
    (A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, M.REASONING_SOURCES),
)


def _request_params(attributes: Attributes, present: frozenset[str], params: dict[str, Any]) -> None:
    if not present.isdisjoint(M.LEGACY_PARAM_KEYS):
        for target, sources in M.REQUEST_PARAM_SOURCES.items():
            if target not in attributes:
                value = _first(attributes, sources)
                if value is not None:
                    attributes[target] = value
    for key, value in params.items():
        param = M.INVOCATION_PARAMETERS.get(key)
        if param is not None and value is not None and param not in attributes:
            if param == A.GEN_AI_REQUEST_STOP_SEQUENCES and isinstance(value, str):
                value = [value]
            attributes[param] = value
    current = attributes.get(A.GEN_AI_REQUEST_STREAM)
    if current is not None and not _truthy(current):
        # The conventions set the flag only when true (OpenLIT writes false too).
        del attributes[A.GEN_AI_REQUEST_STREAM]
    if A.GEN_AI_REQUEST_STREAM not in attributes:
        stream = _first(attributes, M.STREAM_SOURCES)
        if stream is None:
            stream = params.get("stream")
        if stream is not None and _truthy(stream):
            attributes[A.GEN_AI_REQUEST_STREAM] = True


def _user_session(attributes: Attributes) -> None:
    if A.USER_ID not in attributes:
        user = _first(attributes, M.USER_SOURCES)
        if user is None:
            user = _first(attributes, M.ASSOCIATION_USER_SOURCES)
        if user is not None:
            attributes[A.USER_ID] = user
    if A.GEN_AI_CONVERSATION_ID not in attributes:
        session = _first(attributes, (A.SESSION_ID, *M.ASSOCIATION_SESSION_SOURCES))
        if session is not None:
            attributes[A.GEN_AI_CONVERSATION_ID] = session


def _messages(attributes: Attributes, present: frozenset[str], events: list[Event]) -> bool:
    """Fill the message (and tool definition) attributes from legacy content; True when output messages
    were written."""
    if A.GEN_AI_TOOL_DEFINITIONS not in present and not present.isdisjoint(M.TOOL_SENTINELS):
        groups = msg.indexed_families(attributes, (M.OLLM_FUNCTIONS_PREFIX, M.OI_TOOLS_PREFIX))
        tools = msg.tool_definitions(groups[M.OLLM_FUNCTIONS_PREFIX] or groups[M.OI_TOOLS_PREFIX])
        if tools:
            attributes[A.GEN_AI_TOOL_DEFINITIONS] = msg.dumps(tools)
    want_input = A.GEN_AI_INPUT_MESSAGES not in present
    want_output = A.GEN_AI_OUTPUT_MESSAGES not in present
    if not (want_input or want_output):
        return False
    inputs: list[msg.Message] = []
    outputs: list[msg.Message] = []
    system: list[msg.Part] = []
    ollm_in = want_input and not present.isdisjoint(M.OLLM_PROMPT_SENTINELS)
    ollm_out = want_output and not present.isdisjoint(M.OLLM_COMPLETION_SENTINELS)
    oi_in = want_input and not ollm_in and not present.isdisjoint(M.OI_INPUT_SENTINELS)
    oi_out = want_output and not ollm_out and not present.isdisjoint(M.OI_OUTPUT_SENTINELS)
    if ollm_in or ollm_out:
        groups = msg.indexed_families(attributes, (M.OLLM_PROMPT_PREFIX, M.OLLM_COMPLETION_PREFIX))
        if ollm_in:
            inputs = msg.openllmetry_messages(groups[M.OLLM_PROMPT_PREFIX], output=False)
        if ollm_out:
            outputs = msg.openllmetry_messages(groups[M.OLLM_COMPLETION_PREFIX], output=True)
    if oi_in or oi_out:
        groups = msg.indexed_families(attributes, (M.OI_INPUT_MESSAGES_PREFIX, M.OI_OUTPUT_MESSAGES_PREFIX))
        if oi_in:
            inputs = msg.openinference_messages(groups[M.OI_INPUT_MESSAGES_PREFIX], False, None)
        if oi_out:
            outputs = msg.openinference_messages(
                groups[M.OI_OUTPUT_MESSAGES_PREFIX], True, attributes.get(M.OI_FINISH_REASON)
            )
    if want_input and not inputs and M.OLD_PROMPT in present:
        inputs = msg.old_content(attributes[M.OLD_PROMPT], output=False)
    if want_output and not outputs and M.OLD_COMPLETION in present:
        outputs = msg.old_content(attributes[M.OLD_COMPLETION], output=True)
    if events and ((want_input and not inputs) or (want_output and not outputs)):
        event_inputs, event_outputs, system = msg.event_messages(events)
        inputs = inputs or event_inputs
        outputs = outputs or event_outputs
    if attributes.get(M.OPENINFERENCE_SPAN_KIND) == "LLM":
        if want_input and not inputs and M.OI_INPUT_VALUE in present:
            inputs, system = msg.openinference_input_value(attributes[M.OI_INPUT_VALUE])
        if want_output and not outputs and M.OI_OUTPUT_VALUE in present:
            outputs = msg.openinference_output_value(attributes[M.OI_OUTPUT_VALUE])
    if want_input and inputs:
        attributes[A.GEN_AI_INPUT_MESSAGES] = msg.dumps(inputs)
    if system and A.GEN_AI_SYSTEM_INSTRUCTIONS not in attributes:
        attributes[A.GEN_AI_SYSTEM_INSTRUCTIONS] = msg.dumps(system)
    if want_output and outputs:
        attributes[A.GEN_AI_OUTPUT_MESSAGES] = msg.dumps(outputs)
        if A.GEN_AI_RESPONSE_FINISH_REASONS not in present:
            reasons = [
                m["finish_reason"]
                for m in outputs
                if isinstance(m, dict) and isinstance(m.get("finish_reason"), str)
            ]
            if reasons:
                attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
        return True
    return False


def normalize_attributes(
    attributes: Attributes, name: str, scope_name: str, events: list[Event], messages: bool = True
) -> None:
    """Add the current-convention attributes a GenAI span lacks, derived from its legacy ones (in place).

    ``messages=False`` leaves legacy content as it is (no ``gen_ai.*.messages`` built from it): building
    the message JSON is most of the normaliser's cost on legacy spans.
    """
    present = M.KNOWN_KEYS.intersection(attributes)
    provider = _provider(attributes)
    if provider is not None:
        attributes[A.GEN_AI_PROVIDER_NAME] = provider
    operation = attributes.get(A.GEN_AI_OPERATION_NAME)
    if isinstance(operation, str) and operation:
        alias = M.OPERATION_ALIASES.get(operation.lower(), operation)
        if alias != operation:
            attributes[A.GEN_AI_OPERATION_NAME] = alias
    else:
        derived = _operation(attributes, name)
        if derived is not None:
            attributes[A.GEN_AI_OPERATION_NAME] = derived
    params = _invocation_parameters(attributes) if not present.isdisjoint(M.OI_INVOCATION_PARAMETERS) else {}
    if A.GEN_AI_REQUEST_MODEL not in present:
        model = _first(attributes, M.REQUEST_MODEL_SOURCES[1:])
        if model is None:
            invoked = params.get("model")
            model = invoked if isinstance(invoked, str) and invoked else None
        if model is None:
            model = _first(attributes, M.FALLBACK_REQUEST_MODEL_SOURCES)
        if model is not None:
            attributes[A.GEN_AI_REQUEST_MODEL] = model
    if A.GEN_AI_RESPONSE_MODEL not in present:
        model = _first(attributes, M.RESPONSE_MODEL_SOURCES[1:] + M.FALLBACK_RESPONSE_MODEL_SOURCES)
        if model is not None:
            attributes[A.GEN_AI_RESPONSE_MODEL] = model
    if not present.isdisjoint(M.USAGE_KEYS):
        _usage(attributes, present, provider, scope_name)
    if params or not present.isdisjoint(M.PARAM_KEYS):
        _request_params(attributes, present, params)
    if not present.isdisjoint(M.USER_SESSION_KEYS):
        _user_session(attributes)
    wrote_output = False
    if messages and (not present.isdisjoint(M.MESSAGE_KEYS) or (events and _has_content_event(events))):
        wrote_output = _messages(attributes, present, events)
    if not wrote_output and A.GEN_AI_RESPONSE_FINISH_REASONS not in present and M.OI_FINISH_REASON in present:
        finish = attributes[M.OI_FINISH_REASON]
        if isinstance(finish, str) and finish:
            attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] = [finish]


def _has_content_event(events: list[Event]) -> bool:
    names = M.CONTENT_EVENT_NAMES
    return any(event.name in names for event in events)


def drop_legacy(attributes: Attributes, messages: bool = True) -> None:
    """Remove the legacy keys the normaliser maps (for ``keep_original: false``); legacy content only when
    it was converted (``messages``)."""
    if messages:
        doomed = [
            k
            for k in attributes
            if k in M.LEGACY_KEYS or (k.startswith(M.LEGACY_PREFIXES) and k not in M.PROMPT_IDENTITY_KEYS)
        ]
    else:
        doomed = [k for k in attributes if k in M.LEGACY_KEYS and k not in M.LEGACY_CONTENT_KEYS]
    for key in doomed:
        del attributes[key]
