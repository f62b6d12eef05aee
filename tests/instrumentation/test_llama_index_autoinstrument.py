"""`opentelemetry-instrument python app.py` loads llm_observer_llama_index from its entry point: an unchanged
LlamaIndex app (a workflow whose step calls a tool and a custom LLM over the openai SDK) sends one tree of
spans over OTLP/HTTP, with one LLM span for the model call although the OpenAI instrumentor is loaded too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llm_observer.instrumentation.testing import ReplayServer, Route
from llm_observer.instrumentation.testing.autoinstrument import run_instrumented
from llm_observer.instrumentation.testing.otlp import otlp_trace_route, spans_from_requests

Recording = Callable[[str], list[Route]]

ENTRY_POINT = "llm_observer_llama_index"

APP = """
import asyncio
import os

import openai
from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import StartEvent, StopEvent, Workflow, step


class Replay(CustomLLM):
    @property
    def metadata(self):
        return LLMMetadata(model_name="gpt-4o-mini")

    @llm_completion_callback()
    def complete(self, prompt, formatted=False, **kwargs):
        client = openai.OpenAI(base_url=os.environ["PROVIDER_URL"] + "/v1", api_key="sk-test", max_retries=0)
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
        return CompletionResponse(text=answer.choices[0].message.content, raw=answer)

    @llm_completion_callback()
    def stream_complete(self, prompt, formatted=False, **kwargs):
        raise NotImplementedError


def get_weather(city: str) -> str:
    \"\"\"Current weather for a city.\"\"\"
    return f"rain in {city}"


class Desk(Workflow):
    @step
    async def answer(self, ev: StartEvent) -> StopEvent:
        weather = FunctionTool.from_defaults(get_weather).call(city="Paris")
        return StopEvent(result=Replay().complete(f"Summarise: {weather}").text)


async def main():
    return await Desk(timeout=10).run()


print(asyncio.run(main()))
"""


def test_llama_index_autoinstrument_entry_point_exports_one_tree(
    tmp_path: Path, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("llama_index/answer.json"))
    with ReplayServer([otlp_trace_route()]) as collector:
        done = run_instrumented(
            APP, tmp_path, collector.url, {"PROVIDER_URL": replay.url, "OTEL_SERVICE_NAME": "llama-app"}
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "Noted."
        spans = {span.name: span for span in spans_from_requests(collector.requests)}
    assert sorted(spans) == [
        "execute_tool get_weather",
        "invoke_agent answer",
        "invoke_workflow Desk",
        "text_completion gpt-4o-mini",
    ]
    root, agent = spans["invoke_workflow Desk"], spans["invoke_agent answer"]
    llm, tool = spans["text_completion gpt-4o-mini"], spans["execute_tool get_weather"]
    assert root.parent_span_id == ""
    assert agent.parent_span_id == root.span_id
    assert llm.parent_span_id == tool.parent_span_id == agent.span_id
    assert llm.scope == "llm_observer.instrumentation.llama_index"
    assert llm.resource["service.name"] == "llama-app"
    assert (llm.attributes["gen_ai.usage.input_tokens"], llm.attributes["gen_ai.usage.output_tokens"]) == (
        45,
        6,
    )
    assert (agent.attributes["llm_observer.subtree.input_tokens"], root.attributes["llm_observer.subtree.output_tokens"]) == (45, 6)  # fmt: skip
