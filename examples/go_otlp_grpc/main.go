// Command agent sends a GenAI agent trace to llm-observer over OTLP/gRPC with the OpenTelemetry Go SDK.
//
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 go run .
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func main() {
	ctx := context.Background()
	// The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT; insecure because the collector listens on plain gRPC.
	exporter, err := otlptracegrpc.New(ctx, otlptracegrpc.WithInsecure())
	if err != nil {
		log.Fatalf("creating the OTLP exporter: %v", err)
	}
	project := os.Getenv("LLM_OBSERVER_PROJECT")
	if project == "" {
		project = "examples"
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", "go-research-agent"),
		attribute.String("llm_observer.project.id", project),
	)
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	tracer := provider.Tracer("examples/go_otlp_grpc")

	ctx, agent := tracer.Start(ctx, "invoke_agent researcher", trace.WithSpanKind(trace.SpanKindInternal))
	agent.SetAttributes(
		attribute.String("gen_ai.operation.name", "invoke_agent"),
		attribute.String("gen_ai.agent.name", "researcher"),
	)
	_, llm := tracer.Start(ctx, "chat claude-3-5-sonnet-20241022", trace.WithSpanKind(trace.SpanKindClient))
	llm.SetAttributes(
		attribute.String("gen_ai.operation.name", "chat"),
		attribute.String("gen_ai.provider.name", "anthropic"),
		attribute.String("gen_ai.request.model", "claude-3-5-sonnet-20241022"),
		attribute.Int("gen_ai.usage.input_tokens", 2048),
		attribute.Int("gen_ai.usage.output_tokens", 350),
		attribute.Int("gen_ai.usage.cache_read.input_tokens", 1024),
		attribute.StringSlice("gen_ai.response.finish_reasons", []string{"end_turn"}),
	)
	llm.End()
	_, tool := tracer.Start(ctx, "execute_tool web_search", trace.WithSpanKind(trace.SpanKindInternal))
	tool.SetAttributes(
		attribute.String("gen_ai.operation.name", "execute_tool"),
		attribute.String("gen_ai.tool.name", "web_search"),
	)
	tool.SetStatus(codes.Error, "rate limited")
	tool.End()
	agent.End()

	if err := provider.Shutdown(ctx); err != nil {
		log.Fatalf("flushing spans: %v", err)
	}
	fmt.Println("sent 3 spans")
}
