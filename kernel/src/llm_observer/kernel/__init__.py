"""What every llm-observer component builds on: contracts, the batch type, the OTLP codec, errors, auth,
self-telemetry, endpoints and the servers they listen with. Imports nothing of llm-observer but ``semconv``."""
