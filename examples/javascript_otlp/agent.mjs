// A GenAI agent trace from Node.js to llm-observer over OTLP/HTTP (protobuf):
// invoke_agent → chat (with token usage) and execute_tool, following the OpenTelemetry GenAI conventions.
//   OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 node agent.mjs
// The exporter reads the standard variables itself: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is), else
// OTEL_EXPORTER_OTLP_ENDPOINT (with /v1/traces appended), else http://localhost:4318/v1/traces; and
// OTEL_EXPORTER_OTLP_HEADERS, e.g. "Authorization=Bearer <key>" when the collector has auth on.
import { context, trace, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, StackContextManager, TracerProvider } from "@opentelemetry/sdk-trace";

context.setGlobalContextManager(new StackContextManager().enable());
const provider = new TracerProvider({
  resource: resourceFromAttributes({
    "service.name": "js-support-agent",
    "llm_observer.project.id": process.env.LLM_OBSERVER_PROJECT ?? "examples",
  }),
  spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter() })],
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
console.log("sent 3 spans");
