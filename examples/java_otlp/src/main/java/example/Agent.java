package example;

import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Scope;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import io.opentelemetry.sdk.autoconfigure.AutoConfiguredOpenTelemetrySdk;
import io.opentelemetry.sdk.resources.Resource;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Sends one GenAI agent trace to llm-observer over OTLP/HTTP (protobuf).
 *
 * <p>The SDK's autoconfiguration reads the standard variables: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as
 * is), else OTEL_EXPORTER_OTLP_ENDPOINT (with /v1/traces appended), else http://localhost:4318/v1/traces;
 * OTEL_EXPORTER_OTLP_HEADERS ("Authorization=Bearer <key>" when the collector has auth on),
 * OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES. The defaults below apply only where those are unset.
 */
public final class Agent {
  private static final Map<String, String> DEFAULTS = Map.of(
      "otel.service.name", "java-billing-agent",
      "otel.exporter.otlp.protocol", "http/protobuf",
      "otel.traces.exporter", "otlp",
      "otel.metrics.exporter", "none",
      "otel.logs.exporter", "none");

  public static void main(String[] args) {
    String project = System.getenv().getOrDefault("LLM_OBSERVER_PROJECT", "examples");
    Resource tenant = Resource.create(Attributes.of(AttributeKey.stringKey("llm_observer.project.id"), project));
    OpenTelemetrySdk sdk = AutoConfiguredOpenTelemetrySdk.builder()
        .addPropertiesSupplier(() -> DEFAULTS)
        .addResourceCustomizer((resource, config) -> resource.merge(tenant))
        .disableShutdownHook()
        .build()
        .getOpenTelemetrySdk();
    Tracer tracer = sdk.getTracer("examples/java_otlp", "1.0.0");

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
    sdk.shutdown().join(30, TimeUnit.SECONDS);
    System.out.println("sent 3 spans");
  }
}
