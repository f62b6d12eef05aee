// A GenAI agent trace from Node.js to llm-observer over OTLP/HTTP (protobuf):
// invoke_agent → chat (with token usage) and execute_tool, following the OpenTelemetry GenAI conventions.
//   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://localhost:4318/v1/traces node agent.mjs
import { context, trace, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, StackContextManager, TracerProvider } from "@opentelemetry/sdk-trace";

const endpoint = process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? "http://localhost:4318/v1/traces";
context.setGlobalContextManager(new StackContextManager().enable());
const provider = new TracerProvider({
  resource: resourceFromAttributes({
    "service.name": "js-support-agent",
    "llm_observer.project.id": process.env.LLM_OBSERVER_PROJECT ?? "examples",
  }),
  spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: endpoint }) })],
});
const tracer = provider.getTracer("examples/javascript_otlp", "1.0.0");

tracer.startActiveSpan("invoke_agent support", { kind: SpanKind.INTERNAL }, (agent) => {
  agent.setAttributes({ "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support" });
  tracer.startActiveSpan("chat gpt-4o-mini", { kind: SpanKind.CLIENT }, (llm) => {
    llm.setAttributes({
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": "openai",
      "gen_ai.request.model": "gpt-4o-mini",
      "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
      "gen_ai.usage.input_tokens": 812,
      "gen_ai.usage.output_tokens": 96,
      "gen_ai.input.messages": JSON.stringify([
        { role: "user", parts: [{ type: "text", content: "Where is my order #1234?" }] },
      ]),
    });
    llm.end();
  });
  tracer.startActiveSpan("execute_tool lookup_order", { kind: SpanKind.INTERNAL }, (tool) => {
    tool.setAttributes({ "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order" });
    tool.setStatus({ code: SpanStatusCode.ERROR, message: "order service timed out" });
    tool.end();
  });
  agent.end();
});

await provider.shutdown();
console.log(`sent 3 spans to ${endpoint}`);
