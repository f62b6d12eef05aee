package example;

import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Scope;
import io.opentelemetry.exporter.otlp.http.trace.OtlpHttpSpanExporter;
import io.opentelemetry.sdk.resources.Resource;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.sdk.trace.export.BatchSpanProcessor;
import java.util.concurrent.TimeUnit;

/** Sends one GenAI agent trace to llm-observer over OTLP/HTTP (protobuf). */
public final class Agent {
  public static void main(String[] args) {
    String endpoint = System.getenv().getOrDefault("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://localhost:4318/v1/traces");
    String project = System.getenv().getOrDefault("LLM_OBSERVER_PROJECT", "examples");
    Resource resource = Resource.create(Attributes.of(
        AttributeKey.stringKey("service.name"), "java-billing-agent",
        AttributeKey.stringKey("llm_observer.project.id"), project));
    SdkTracerProvider provider = SdkTracerProvider.builder()
        .setResource(resource)
        .addSpanProcessor(BatchSpanProcessor.builder(OtlpHttpSpanExporter.builder().setEndpoint(endpoint).build()).build())
        .build();
    Tracer tracer = provider.get("examples/java_otlp", "1.0.0");

    Span agent = tracer.spanBuilder("invoke_agent billing").setSpanKind(SpanKind.INTERNAL).startSpan();
    agent.setAttribute("gen_ai.operation.name", "invoke_agent");
    agent.setAttribute("gen_ai.agent.name", "billing");
    try (Scope ignored = agent.makeCurrent()) {
      Span llm = tracer.spanBuilder("chat gpt-4o").setSpanKind(SpanKind.CLIENT).startSpan();
      llm.setAttribute("gen_ai.operation.name", "chat");
      llm.setAttribute("gen_ai.provider.name", "openai");
      llm.setAttribute("gen_ai.request.model", "gpt-4o");
      llm.setAttribute("gen_ai.usage.input_tokens", 1000L);
      llm.setAttribute("gen_ai.usage.output_tokens", 500L);
      llm.setAttribute("gen_ai.usage.cache_read.input_tokens", 200L);
      llm.end();
      Span tool = tracer.spanBuilder("execute_tool refund").setSpanKind(SpanKind.INTERNAL).startSpan();
      tool.setAttribute("gen_ai.operation.name", "execute_tool");
      tool.setAttribute("gen_ai.tool.name", "refund");
      tool.setStatus(StatusCode.ERROR, "refund limit exceeded");
      tool.end();
    } finally {
      agent.end();
    }
    provider.shutdown().join(30, TimeUnit.SECONDS);
    System.out.println("sent 3 spans to " + endpoint);
  }
}
