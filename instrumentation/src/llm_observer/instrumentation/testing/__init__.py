"""Reusable test fakes for instrumentation: a replay HTTP server and in-memory OpenTelemetry pipelines.

Importing this package pulls in only the standard library and the OpenTelemetry SDK.
"""

from llm_observer.instrumentation.testing.otel import TelemetryCapture
from llm_observer.instrumentation.testing.replay import RecordedRequest, ReplayServer, Route, load_recording

__all__ = ["RecordedRequest", "ReplayServer", "Route", "TelemetryCapture", "load_recording"]
