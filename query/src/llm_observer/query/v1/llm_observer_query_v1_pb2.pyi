# mypy: ignore-errors
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SpanFilter(_message.Message):
    __slots__ = ("service", "model", "provider", "operation", "span_name", "user_id", "team_id", "conversation_id", "attributes", "text")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    SPAN_NAME_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    service: str
    model: str
    provider: str
    operation: str
    span_name: str
    user_id: str
    team_id: str
    conversation_id: str
    attributes: _containers.ScalarMap[str, str]
    text: str
    def __init__(self, service: _Optional[str] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ..., operation: _Optional[str] = ..., span_name: _Optional[str] = ..., user_id: _Optional[str] = ..., team_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., text: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("time_unix_nano", "name", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _struct_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    time_unix_nano: int
    name: str
    attributes: _containers.MessageMap[str, _struct_pb2.Value]
    def __init__(self, time_unix_nano: _Optional[int] = ..., name: _Optional[str] = ..., attributes: _Optional[_Mapping[str, _struct_pb2.Value]] = ...) -> None: ...

class Span(_message.Message):
    __slots__ = ("trace_id", "span_id", "parent_span_id", "name", "kind", "start_time_unix_nano", "end_time_unix_nano", "duration_ms", "status", "status_message", "service_name", "organization_id", "project_id", "operation", "provider", "request_model", "response_model", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd", "input", "output", "attributes", "resource", "events")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _struct_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...
    class ResourceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _struct_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_MODEL_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    duration_ms: float
    status: str
    status_message: str
    service_name: str
    organization_id: str
    project_id: str
    operation: str
    provider: str
    request_model: str
    response_model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float
    input: str
    output: str
    attributes: _containers.MessageMap[str, _struct_pb2.Value]
    resource: _containers.MessageMap[str, _struct_pb2.Value]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, trace_id: _Optional[str] = ..., span_id: _Optional[str] = ..., parent_span_id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., duration_ms: _Optional[float] = ..., status: _Optional[str] = ..., status_message: _Optional[str] = ..., service_name: _Optional[str] = ..., organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., operation: _Optional[str] = ..., provider: _Optional[str] = ..., request_model: _Optional[str] = ..., response_model: _Optional[str] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cache_read_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ..., reasoning_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., input: _Optional[str] = ..., output: _Optional[str] = ..., attributes: _Optional[_Mapping[str, _struct_pb2.Value]] = ..., resource: _Optional[_Mapping[str, _struct_pb2.Value]] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class GetTraceRequest(_message.Message):
    __slots__ = ("trace_id", "organization_id", "project_id")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    organization_id: str
    project_id: str
    def __init__(self, trace_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class GetTraceResponse(_message.Message):
    __slots__ = ("trace_id", "spans")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    spans: _containers.RepeatedCompositeFieldContainer[Span]
    def __init__(self, trace_id: _Optional[str] = ..., spans: _Optional[_Iterable[_Union[Span, _Mapping]]] = ...) -> None: ...

class SearchTracesRequest(_message.Message):
    __slots__ = ("organization_id", "project_id", "start_time_unix_nano", "end_time_unix_nano", "filter", "status", "min_duration_ms", "max_duration_ms", "min_cost_usd", "limit", "cursor", "sort", "ascending")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MIN_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_COST_USD_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    ASCENDING_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    project_id: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    filter: SpanFilter
    status: str
    min_duration_ms: float
    max_duration_ms: float
    min_cost_usd: float
    limit: int
    cursor: str
    sort: str
    ascending: bool
    def __init__(self, organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., filter: _Optional[_Union[SpanFilter, _Mapping]] = ..., status: _Optional[str] = ..., min_duration_ms: _Optional[float] = ..., max_duration_ms: _Optional[float] = ..., min_cost_usd: _Optional[float] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ..., sort: _Optional[str] = ..., ascending: _Optional[bool] = ...) -> None: ...

class TraceSummary(_message.Message):
    __slots__ = ("trace_id", "root_span_name", "service_name", "organization_id", "project_id", "start_time_unix_nano", "duration_ms", "span_count", "error_count", "status", "input_tokens", "output_tokens", "cost_usd", "models")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    ROOT_SPAN_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    SPAN_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_COUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    root_span_name: str
    service_name: str
    organization_id: str
    project_id: str
    start_time_unix_nano: int
    duration_ms: float
    span_count: int
    error_count: int
    status: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, trace_id: _Optional[str] = ..., root_span_name: _Optional[str] = ..., service_name: _Optional[str] = ..., organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., duration_ms: _Optional[float] = ..., span_count: _Optional[int] = ..., error_count: _Optional[int] = ..., status: _Optional[str] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., models: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchTracesResponse(_message.Message):
    __slots__ = ("traces", "next_cursor")
    TRACES_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    traces: _containers.RepeatedCompositeFieldContainer[TraceSummary]
    next_cursor: str
    def __init__(self, traces: _Optional[_Iterable[_Union[TraceSummary, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class Metrics(_message.Message):
    __slots__ = ("request_count", "error_count", "error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd")
    REQUEST_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_MS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    request_count: int
    error_count: int
    error_rate: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float
    def __init__(self, request_count: _Optional[int] = ..., error_count: _Optional[int] = ..., error_rate: _Optional[float] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ..., latency_p99_ms: _Optional[float] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cache_read_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ..., reasoning_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ...) -> None: ...

class MetricsGroup(_message.Message):
    __slots__ = ("key", "metrics", "series")
    KEY_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    key: str
    metrics: Metrics
    series: _containers.RepeatedCompositeFieldContainer[MetricsPoint]
    def __init__(self, key: _Optional[str] = ..., metrics: _Optional[_Union[Metrics, _Mapping]] = ..., series: _Optional[_Iterable[_Union[MetricsPoint, _Mapping]]] = ...) -> None: ...

class MetricsPoint(_message.Message):
    __slots__ = ("time_unix_nano", "metrics")
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    time_unix_nano: int
    metrics: Metrics
    def __init__(self, time_unix_nano: _Optional[int] = ..., metrics: _Optional[_Union[Metrics, _Mapping]] = ...) -> None: ...

class GetMetricsSummaryRequest(_message.Message):
    __slots__ = ("organization_id", "project_id", "start_time_unix_nano", "end_time_unix_nano", "group_by", "filter", "step_seconds", "group_series")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    STEP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    GROUP_SERIES_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    project_id: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    group_by: str
    filter: SpanFilter
    step_seconds: int
    group_series: bool
    def __init__(self, organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., group_by: _Optional[str] = ..., filter: _Optional[_Union[SpanFilter, _Mapping]] = ..., step_seconds: _Optional[int] = ..., group_series: _Optional[bool] = ...) -> None: ...

class GetMetricsSummaryResponse(_message.Message):
    __slots__ = ("total", "group_by", "groups", "series")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    total: Metrics
    group_by: str
    groups: _containers.RepeatedCompositeFieldContainer[MetricsGroup]
    series: _containers.RepeatedCompositeFieldContainer[MetricsPoint]
    def __init__(self, total: _Optional[_Union[Metrics, _Mapping]] = ..., group_by: _Optional[str] = ..., groups: _Optional[_Iterable[_Union[MetricsGroup, _Mapping]]] = ..., series: _Optional[_Iterable[_Union[MetricsPoint, _Mapping]]] = ...) -> None: ...

class Cost(_message.Message):
    __slots__ = ("key", "request_count", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd", "input_cost_usd", "output_cost_usd", "cache_read_cost_usd", "cache_write_cost_usd")
    KEY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_COUNT_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    INPUT_COST_USD_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_COST_USD_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_COST_USD_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_COST_USD_FIELD_NUMBER: _ClassVar[int]
    key: str
    request_count: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    input_cost_usd: float
    output_cost_usd: float
    cache_read_cost_usd: float
    cache_write_cost_usd: float
    def __init__(self, key: _Optional[str] = ..., request_count: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cache_read_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., input_cost_usd: _Optional[float] = ..., output_cost_usd: _Optional[float] = ..., cache_read_cost_usd: _Optional[float] = ..., cache_write_cost_usd: _Optional[float] = ...) -> None: ...

class GetCostBreakdownRequest(_message.Message):
    __slots__ = ("organization_id", "project_id", "start_time_unix_nano", "end_time_unix_nano", "group_by", "filter")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    project_id: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    group_by: str
    filter: SpanFilter
    def __init__(self, organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., group_by: _Optional[str] = ..., filter: _Optional[_Union[SpanFilter, _Mapping]] = ...) -> None: ...

class GetCostBreakdownResponse(_message.Message):
    __slots__ = ("total", "group_by", "groups")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    total: Cost
    group_by: str
    groups: _containers.RepeatedCompositeFieldContainer[Cost]
    def __init__(self, total: _Optional[_Union[Cost, _Mapping]] = ..., group_by: _Optional[str] = ..., groups: _Optional[_Iterable[_Union[Cost, _Mapping]]] = ...) -> None: ...

class SemanticSearchRequest(_message.Message):
    __slots__ = ("organization_id", "project_id", "query", "k", "model", "start_time_unix_nano", "end_time_unix_nano", "kind", "q")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    Q_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    project_id: str
    query: str
    k: int
    model: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    kind: str
    q: str
    def __init__(self, organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., query: _Optional[str] = ..., k: _Optional[int] = ..., model: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., kind: _Optional[str] = ..., q: _Optional[str] = ...) -> None: ...

class SemanticSearchResult(_message.Message):
    __slots__ = ("trace_id", "span_id", "score", "text", "model", "fields_json")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FIELDS_JSON_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    span_id: str
    score: float
    text: str
    model: str
    fields_json: str
    def __init__(self, trace_id: _Optional[str] = ..., span_id: _Optional[str] = ..., score: _Optional[float] = ..., text: _Optional[str] = ..., model: _Optional[str] = ..., fields_json: _Optional[str] = ...) -> None: ...

class SemanticSearchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SemanticSearchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[SemanticSearchResult, _Mapping]]] = ...) -> None: ...

class TailSpansRequest(_message.Message):
    __slots__ = ("organization_id", "project_id", "filter")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    project_id: str
    filter: SpanFilter
    def __init__(self, organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., filter: _Optional[_Union[SpanFilter, _Mapping]] = ...) -> None: ...

class LogRecord(_message.Message):
    __slots__ = ("time_unix_nano", "trace_id", "span_id", "trace_flags", "severity_text", "severity_number", "service_name", "body", "event_name", "organization_id", "project_id", "scope_name", "scope_version", "attributes", "resource")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _struct_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...
    class ResourceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _struct_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_FLAGS_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_TEXT_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_NAME_FIELD_NUMBER: _ClassVar[int]
    SCOPE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    time_unix_nano: int
    trace_id: str
    span_id: str
    trace_flags: int
    severity_text: str
    severity_number: int
    service_name: str
    body: str
    event_name: str
    organization_id: str
    project_id: str
    scope_name: str
    scope_version: str
    attributes: _containers.MessageMap[str, _struct_pb2.Value]
    resource: _containers.MessageMap[str, _struct_pb2.Value]
    def __init__(self, time_unix_nano: _Optional[int] = ..., trace_id: _Optional[str] = ..., span_id: _Optional[str] = ..., trace_flags: _Optional[int] = ..., severity_text: _Optional[str] = ..., severity_number: _Optional[int] = ..., service_name: _Optional[str] = ..., body: _Optional[str] = ..., event_name: _Optional[str] = ..., organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., scope_name: _Optional[str] = ..., scope_version: _Optional[str] = ..., attributes: _Optional[_Mapping[str, _struct_pb2.Value]] = ..., resource: _Optional[_Mapping[str, _struct_pb2.Value]] = ...) -> None: ...

class GetTraceLogsRequest(_message.Message):
    __slots__ = ("trace_id", "organization_id", "project_id", "limit", "cursor")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    organization_id: str
    project_id: str
    limit: int
    cursor: str
    def __init__(self, trace_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class GetTraceLogsResponse(_message.Message):
    __slots__ = ("trace_id", "logs", "next_cursor")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    logs: _containers.RepeatedCompositeFieldContainer[LogRecord]
    next_cursor: str
    def __init__(self, trace_id: _Optional[str] = ..., logs: _Optional[_Iterable[_Union[LogRecord, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class SearchLogsRequest(_message.Message):
    __slots__ = ("organization_id", "project_id", "start_time_unix_nano", "end_time_unix_nano", "service", "severity_min", "text", "trace_id", "limit", "cursor")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_MIN_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    project_id: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    service: str
    severity_min: str
    text: str
    trace_id: str
    limit: int
    cursor: str
    def __init__(self, organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., service: _Optional[str] = ..., severity_min: _Optional[str] = ..., text: _Optional[str] = ..., trace_id: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class SearchLogsResponse(_message.Message):
    __slots__ = ("logs", "next_cursor")
    LOGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    logs: _containers.RepeatedCompositeFieldContainer[LogRecord]
    next_cursor: str
    def __init__(self, logs: _Optional[_Iterable[_Union[LogRecord, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class GetMetricSeriesRequest(_message.Message):
    __slots__ = ("organization_id", "project_id", "start_time_unix_nano", "end_time_unix_nano", "name", "step_seconds", "agg", "group_by", "kind", "service", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STEP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    AGG_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    project_id: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    name: str
    step_seconds: float
    agg: str
    group_by: _containers.RepeatedScalarFieldContainer[str]
    kind: str
    service: str
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., name: _Optional[str] = ..., step_seconds: _Optional[float] = ..., agg: _Optional[str] = ..., group_by: _Optional[_Iterable[str]] = ..., kind: _Optional[str] = ..., service: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class MetricPoint(_message.Message):
    __slots__ = ("time_unix_nano", "value")
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    time_unix_nano: int
    value: float
    def __init__(self, time_unix_nano: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...

class MetricSeries(_message.Message):
    __slots__ = ("labels", "points")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LABELS_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.ScalarMap[str, str]
    points: _containers.RepeatedCompositeFieldContainer[MetricPoint]
    def __init__(self, labels: _Optional[_Mapping[str, str]] = ..., points: _Optional[_Iterable[_Union[MetricPoint, _Mapping]]] = ...) -> None: ...

class GetMetricSeriesResponse(_message.Message):
    __slots__ = ("name", "kind", "unit", "agg", "step_seconds", "group_by", "series")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    AGG_FIELD_NUMBER: _ClassVar[int]
    STEP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    unit: str
    agg: str
    step_seconds: float
    group_by: _containers.RepeatedScalarFieldContainer[str]
    series: _containers.RepeatedCompositeFieldContainer[MetricSeries]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., unit: _Optional[str] = ..., agg: _Optional[str] = ..., step_seconds: _Optional[float] = ..., group_by: _Optional[_Iterable[str]] = ..., series: _Optional[_Iterable[_Union[MetricSeries, _Mapping]]] = ...) -> None: ...

class ListMetricNamesRequest(_message.Message):
    __slots__ = ("organization_id", "project_id", "start_time_unix_nano", "end_time_unix_nano", "service")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    project_id: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    service: str
    def __init__(self, organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., service: _Optional[str] = ...) -> None: ...

class MetricName(_message.Message):
    __slots__ = ("name", "kind", "unit", "description", "points", "monotonic", "temporality")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    MONOTONIC_FIELD_NUMBER: _ClassVar[int]
    TEMPORALITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    unit: str
    description: str
    points: int
    monotonic: bool
    temporality: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., unit: _Optional[str] = ..., description: _Optional[str] = ..., points: _Optional[int] = ..., monotonic: _Optional[bool] = ..., temporality: _Optional[str] = ...) -> None: ...

class ListMetricNamesResponse(_message.Message):
    __slots__ = ("metrics",)
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.RepeatedCompositeFieldContainer[MetricName]
    def __init__(self, metrics: _Optional[_Iterable[_Union[MetricName, _Mapping]]] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("fingerprint", "rule", "organization_id", "state", "labels", "annotations", "value", "active_since_unix_nano", "fired_at_unix_nano", "resolved_at_unix_nano", "incident_id", "generator_url")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AnnotationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SINCE_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    FIRED_AT_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_URL_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    rule: str
    organization_id: str
    state: str
    labels: _containers.ScalarMap[str, str]
    annotations: _containers.ScalarMap[str, str]
    value: float
    active_since_unix_nano: int
    fired_at_unix_nano: int
    resolved_at_unix_nano: int
    incident_id: str
    generator_url: str
    def __init__(self, fingerprint: _Optional[str] = ..., rule: _Optional[str] = ..., organization_id: _Optional[str] = ..., state: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., annotations: _Optional[_Mapping[str, str]] = ..., value: _Optional[float] = ..., active_since_unix_nano: _Optional[int] = ..., fired_at_unix_nano: _Optional[int] = ..., resolved_at_unix_nano: _Optional[int] = ..., incident_id: _Optional[str] = ..., generator_url: _Optional[str] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("organization_id", "states")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    states: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, organization_id: _Optional[str] = ..., states: _Optional[_Iterable[str]] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("alerts",)
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    def __init__(self, alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ...) -> None: ...

class AlertRule(_message.Message):
    __slots__ = ("name", "kind", "organization_id", "spec", "last_evaluated_unix_nano", "last_error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    LAST_EVALUATED_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    organization_id: str
    spec: _struct_pb2.Struct
    last_evaluated_unix_nano: int
    last_error: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., organization_id: _Optional[str] = ..., spec: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., last_evaluated_unix_nano: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class ListAlertRulesRequest(_message.Message):
    __slots__ = ("organization_id",)
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    def __init__(self, organization_id: _Optional[str] = ...) -> None: ...

class ListAlertRulesResponse(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[AlertRule]
    def __init__(self, rules: _Optional[_Iterable[_Union[AlertRule, _Mapping]]] = ...) -> None: ...

class TestAlertRuleRequest(_message.Message):
    __slots__ = ("organization_id", "rule", "start_time_unix_nano", "end_time_unix_nano", "step_seconds")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    STEP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    rule: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    step_seconds: float
    def __init__(self, organization_id: _Optional[str] = ..., rule: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., step_seconds: _Optional[float] = ...) -> None: ...

class BacktestHit(_message.Message):
    __slots__ = ("labels", "fired_at_unix_nano", "resolved_at_unix_nano", "peak_value")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LABELS_FIELD_NUMBER: _ClassVar[int]
    FIRED_AT_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    PEAK_VALUE_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.ScalarMap[str, str]
    fired_at_unix_nano: int
    resolved_at_unix_nano: int
    peak_value: float
    def __init__(self, labels: _Optional[_Mapping[str, str]] = ..., fired_at_unix_nano: _Optional[int] = ..., resolved_at_unix_nano: _Optional[int] = ..., peak_value: _Optional[float] = ...) -> None: ...

class TestAlertRuleResponse(_message.Message):
    __slots__ = ("hits", "start_time_unix_nano", "end_time_unix_nano", "step_seconds")
    HITS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    STEP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[BacktestHit]
    start_time_unix_nano: int
    end_time_unix_nano: int
    step_seconds: float
    def __init__(self, hits: _Optional[_Iterable[_Union[BacktestHit, _Mapping]]] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., step_seconds: _Optional[float] = ...) -> None: ...

class Incident(_message.Message):
    __slots__ = ("id", "organization_id", "dimension", "value", "started_at_unix_nano", "resolved_at_unix_nano", "alert_fingerprints", "rules", "summary")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    ALERT_FINGERPRINTS_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    id: str
    organization_id: str
    dimension: str
    value: str
    started_at_unix_nano: int
    resolved_at_unix_nano: int
    alert_fingerprints: _containers.RepeatedScalarFieldContainer[str]
    rules: _containers.RepeatedScalarFieldContainer[str]
    summary: str
    def __init__(self, id: _Optional[str] = ..., organization_id: _Optional[str] = ..., dimension: _Optional[str] = ..., value: _Optional[str] = ..., started_at_unix_nano: _Optional[int] = ..., resolved_at_unix_nano: _Optional[int] = ..., alert_fingerprints: _Optional[_Iterable[str]] = ..., rules: _Optional[_Iterable[str]] = ..., summary: _Optional[str] = ...) -> None: ...

class ListIncidentsRequest(_message.Message):
    __slots__ = ("organization_id", "include_resolved")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RESOLVED_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    include_resolved: bool
    def __init__(self, organization_id: _Optional[str] = ..., include_resolved: _Optional[bool] = ...) -> None: ...

class ListIncidentsResponse(_message.Message):
    __slots__ = ("incidents",)
    INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    incidents: _containers.RepeatedCompositeFieldContainer[Incident]
    def __init__(self, incidents: _Optional[_Iterable[_Union[Incident, _Mapping]]] = ...) -> None: ...

class Silence(_message.Message):
    __slots__ = ("id", "organization_id", "matchers", "starts_at_unix_nano", "ends_at_unix_nano", "state", "created_by", "comment")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    organization_id: str
    matchers: _containers.RepeatedScalarFieldContainer[str]
    starts_at_unix_nano: int
    ends_at_unix_nano: int
    state: str
    created_by: str
    comment: str
    def __init__(self, id: _Optional[str] = ..., organization_id: _Optional[str] = ..., matchers: _Optional[_Iterable[str]] = ..., starts_at_unix_nano: _Optional[int] = ..., ends_at_unix_nano: _Optional[int] = ..., state: _Optional[str] = ..., created_by: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class ListSilencesRequest(_message.Message):
    __slots__ = ("organization_id",)
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    def __init__(self, organization_id: _Optional[str] = ...) -> None: ...

class ListSilencesResponse(_message.Message):
    __slots__ = ("silences",)
    SILENCES_FIELD_NUMBER: _ClassVar[int]
    silences: _containers.RepeatedCompositeFieldContainer[Silence]
    def __init__(self, silences: _Optional[_Iterable[_Union[Silence, _Mapping]]] = ...) -> None: ...

class CreateSilenceRequest(_message.Message):
    __slots__ = ("organization_id", "matchers", "starts_at_unix_nano", "ends_at_unix_nano", "duration_seconds", "comment", "created_by")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    matchers: _containers.RepeatedScalarFieldContainer[str]
    starts_at_unix_nano: int
    ends_at_unix_nano: int
    duration_seconds: float
    comment: str
    created_by: str
    def __init__(self, organization_id: _Optional[str] = ..., matchers: _Optional[_Iterable[str]] = ..., starts_at_unix_nano: _Optional[int] = ..., ends_at_unix_nano: _Optional[int] = ..., duration_seconds: _Optional[float] = ..., comment: _Optional[str] = ..., created_by: _Optional[str] = ...) -> None: ...

class ExpireSilenceRequest(_message.Message):
    __slots__ = ("organization_id", "id")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    id: str
    def __init__(self, organization_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class ForecastSpendRequest(_message.Message):
    __slots__ = ("organization_id", "project_id", "period", "group_by", "budget_usd", "confidence", "history_days", "as_of_unix_nano")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    BUDGET_USD_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_DAYS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    project_id: str
    period: str
    group_by: _containers.RepeatedScalarFieldContainer[str]
    budget_usd: float
    confidence: float
    history_days: int
    as_of_unix_nano: int
    def __init__(self, organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., period: _Optional[str] = ..., group_by: _Optional[_Iterable[str]] = ..., budget_usd: _Optional[float] = ..., confidence: _Optional[float] = ..., history_days: _Optional[int] = ..., as_of_unix_nano: _Optional[int] = ...) -> None: ...

class SpendForecast(_message.Message):
    __slots__ = ("group", "spent_usd", "forecast_usd", "low_usd", "high_usd", "confidence", "method", "budget_usd", "budget_exhausted_on", "daily_usd", "expected_cumulative_usd")
    class GroupEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    GROUP_FIELD_NUMBER: _ClassVar[int]
    SPENT_USD_FIELD_NUMBER: _ClassVar[int]
    FORECAST_USD_FIELD_NUMBER: _ClassVar[int]
    LOW_USD_FIELD_NUMBER: _ClassVar[int]
    HIGH_USD_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    BUDGET_USD_FIELD_NUMBER: _ClassVar[int]
    BUDGET_EXHAUSTED_ON_FIELD_NUMBER: _ClassVar[int]
    DAILY_USD_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_CUMULATIVE_USD_FIELD_NUMBER: _ClassVar[int]
    group: _containers.ScalarMap[str, str]
    spent_usd: float
    forecast_usd: float
    low_usd: float
    high_usd: float
    confidence: float
    method: str
    budget_usd: float
    budget_exhausted_on: str
    daily_usd: _containers.RepeatedScalarFieldContainer[float]
    expected_cumulative_usd: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, group: _Optional[_Mapping[str, str]] = ..., spent_usd: _Optional[float] = ..., forecast_usd: _Optional[float] = ..., low_usd: _Optional[float] = ..., high_usd: _Optional[float] = ..., confidence: _Optional[float] = ..., method: _Optional[str] = ..., budget_usd: _Optional[float] = ..., budget_exhausted_on: _Optional[str] = ..., daily_usd: _Optional[_Iterable[float]] = ..., expected_cumulative_usd: _Optional[_Iterable[float]] = ...) -> None: ...

class ForecastSpendResponse(_message.Message):
    __slots__ = ("period", "period_start", "period_end", "as_of", "forecasts")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    FORECASTS_FIELD_NUMBER: _ClassVar[int]
    period: str
    period_start: str
    period_end: str
    as_of: str
    forecasts: _containers.RepeatedCompositeFieldContainer[SpendForecast]
    def __init__(self, period: _Optional[str] = ..., period_start: _Optional[str] = ..., period_end: _Optional[str] = ..., as_of: _Optional[str] = ..., forecasts: _Optional[_Iterable[_Union[SpendForecast, _Mapping]]] = ...) -> None: ...

class CostAdviceRequest(_message.Message):
    __slots__ = ("organization_id", "project_id", "start_time_unix_nano", "end_time_unix_nano", "kinds", "skip_near_duplicates", "near_threshold", "min_prefix_tokens", "examples")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    SKIP_NEAR_DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    NEAR_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MIN_PREFIX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    project_id: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    kinds: _containers.RepeatedScalarFieldContainer[str]
    skip_near_duplicates: bool
    near_threshold: float
    min_prefix_tokens: int
    examples: int
    def __init__(self, organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., kinds: _Optional[_Iterable[str]] = ..., skip_near_duplicates: _Optional[bool] = ..., near_threshold: _Optional[float] = ..., min_prefix_tokens: _Optional[int] = ..., examples: _Optional[int] = ...) -> None: ...

class CostAdviceItem(_message.Message):
    __slots__ = ("kind", "title", "organization_id", "project_id", "provider", "model", "saving_usd", "spend_usd", "calls", "groups", "span_ids", "trace_ids", "details")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SAVING_USD_FIELD_NUMBER: _ClassVar[int]
    SPEND_USD_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    SPAN_IDS_FIELD_NUMBER: _ClassVar[int]
    TRACE_IDS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    title: str
    organization_id: str
    project_id: str
    provider: str
    model: str
    saving_usd: float
    spend_usd: float
    calls: int
    groups: int
    span_ids: _containers.RepeatedScalarFieldContainer[str]
    trace_ids: _containers.RepeatedScalarFieldContainer[str]
    details: _struct_pb2.Struct
    def __init__(self, kind: _Optional[str] = ..., title: _Optional[str] = ..., organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., saving_usd: _Optional[float] = ..., spend_usd: _Optional[float] = ..., calls: _Optional[int] = ..., groups: _Optional[int] = ..., span_ids: _Optional[_Iterable[str]] = ..., trace_ids: _Optional[_Iterable[str]] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class CostAdviceResponse(_message.Message):
    __slots__ = ("start_time", "end_time", "total_saving_usd", "items", "notes")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SAVING_USD_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    start_time: str
    end_time: str
    total_saving_usd: float
    items: _containers.RepeatedCompositeFieldContainer[CostAdviceItem]
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, start_time: _Optional[str] = ..., end_time: _Optional[str] = ..., total_saving_usd: _Optional[float] = ..., items: _Optional[_Iterable[_Union[CostAdviceItem, _Mapping]]] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...

class PromptClustersRequest(_message.Message):
    __slots__ = ("organization_id", "project_id", "start_time_unix_nano", "end_time_unix_nano", "k", "k_min", "k_max", "max_prompts")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    K_MIN_FIELD_NUMBER: _ClassVar[int]
    K_MAX_FIELD_NUMBER: _ClassVar[int]
    MAX_PROMPTS_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    project_id: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    k: int
    k_min: int
    k_max: int
    max_prompts: int
    def __init__(self, organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., k: _Optional[int] = ..., k_min: _Optional[int] = ..., k_max: _Optional[int] = ..., max_prompts: _Optional[int] = ...) -> None: ...

class LatencyPercentiles(_message.Message):
    __slots__ = ("p50", "p95")
    P50_FIELD_NUMBER: _ClassVar[int]
    P95_FIELD_NUMBER: _ClassVar[int]
    p50: float
    p95: float
    def __init__(self, p50: _Optional[float] = ..., p95: _Optional[float] = ...) -> None: ...

class ClusterTerm(_message.Message):
    __slots__ = ("term", "score")
    TERM_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    term: str
    score: float
    def __init__(self, term: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class ClusterDayShare(_message.Message):
    __slots__ = ("day", "prompts", "share")
    DAY_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    day: str
    prompts: int
    share: float
    def __init__(self, day: _Optional[str] = ..., prompts: _Optional[int] = ..., share: _Optional[float] = ...) -> None: ...

class PromptCluster(_message.Message):
    __slots__ = ("id", "label", "terms", "prompts", "share", "calls", "errors", "error_rate", "cost_usd", "input_tokens", "output_tokens", "latency_ms", "models", "examples", "first_half_share", "second_half_share", "share_change", "daily")
    ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    FIRST_HALF_SHARE_FIELD_NUMBER: _ClassVar[int]
    SECOND_HALF_SHARE_FIELD_NUMBER: _ClassVar[int]
    SHARE_CHANGE_FIELD_NUMBER: _ClassVar[int]
    DAILY_FIELD_NUMBER: _ClassVar[int]
    id: int
    label: str
    terms: _containers.RepeatedCompositeFieldContainer[ClusterTerm]
    prompts: int
    share: float
    calls: int
    errors: int
    error_rate: float
    cost_usd: float
    input_tokens: int
    output_tokens: int
    latency_ms: LatencyPercentiles
    models: _containers.RepeatedScalarFieldContainer[str]
    examples: _containers.RepeatedScalarFieldContainer[str]
    first_half_share: float
    second_half_share: float
    share_change: float
    daily: _containers.RepeatedCompositeFieldContainer[ClusterDayShare]
    def __init__(self, id: _Optional[int] = ..., label: _Optional[str] = ..., terms: _Optional[_Iterable[_Union[ClusterTerm, _Mapping]]] = ..., prompts: _Optional[int] = ..., share: _Optional[float] = ..., calls: _Optional[int] = ..., errors: _Optional[int] = ..., error_rate: _Optional[float] = ..., cost_usd: _Optional[float] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., latency_ms: _Optional[_Union[LatencyPercentiles, _Mapping]] = ..., models: _Optional[_Iterable[str]] = ..., examples: _Optional[_Iterable[str]] = ..., first_half_share: _Optional[float] = ..., second_half_share: _Optional[float] = ..., share_change: _Optional[float] = ..., daily: _Optional[_Iterable[_Union[ClusterDayShare, _Mapping]]] = ...) -> None: ...

class SilhouetteScore(_message.Message):
    __slots__ = ("k", "silhouette")
    K_FIELD_NUMBER: _ClassVar[int]
    SILHOUETTE_FIELD_NUMBER: _ClassVar[int]
    k: int
    silhouette: float
    def __init__(self, k: _Optional[int] = ..., silhouette: _Optional[float] = ...) -> None: ...

class ClusterDrift(_message.Message):
    __slots__ = ("js_divergence", "first_half_prompts", "second_half_prompts")
    JS_DIVERGENCE_FIELD_NUMBER: _ClassVar[int]
    FIRST_HALF_PROMPTS_FIELD_NUMBER: _ClassVar[int]
    SECOND_HALF_PROMPTS_FIELD_NUMBER: _ClassVar[int]
    js_divergence: float
    first_half_prompts: int
    second_half_prompts: int
    def __init__(self, js_divergence: _Optional[float] = ..., first_half_prompts: _Optional[int] = ..., second_half_prompts: _Optional[int] = ...) -> None: ...

class PromptClustersResponse(_message.Message):
    __slots__ = ("project_id", "start_time", "end_time", "method", "k", "k_chosen_by", "silhouette", "silhouette_by_k", "prompts", "matched_calls", "truncated", "drift", "days", "clusters")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    K_CHOSEN_BY_FIELD_NUMBER: _ClassVar[int]
    SILHOUETTE_FIELD_NUMBER: _ClassVar[int]
    SILHOUETTE_BY_K_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    MATCHED_CALLS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    DRIFT_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    start_time: str
    end_time: str
    method: str
    k: int
    k_chosen_by: str
    silhouette: float
    silhouette_by_k: _containers.RepeatedCompositeFieldContainer[SilhouetteScore]
    prompts: int
    matched_calls: int
    truncated: bool
    drift: ClusterDrift
    days: _containers.RepeatedScalarFieldContainer[str]
    clusters: _containers.RepeatedCompositeFieldContainer[PromptCluster]
    def __init__(self, project_id: _Optional[str] = ..., start_time: _Optional[str] = ..., end_time: _Optional[str] = ..., method: _Optional[str] = ..., k: _Optional[int] = ..., k_chosen_by: _Optional[str] = ..., silhouette: _Optional[float] = ..., silhouette_by_k: _Optional[_Iterable[_Union[SilhouetteScore, _Mapping]]] = ..., prompts: _Optional[int] = ..., matched_calls: _Optional[int] = ..., truncated: _Optional[bool] = ..., drift: _Optional[_Union[ClusterDrift, _Mapping]] = ..., days: _Optional[_Iterable[str]] = ..., clusters: _Optional[_Iterable[_Union[PromptCluster, _Mapping]]] = ...) -> None: ...

class PromptVersionsRequest(_message.Message):
    __slots__ = ("organization_id", "project_id", "start_time_unix_nano", "end_time_unix_nano", "filter", "min_calls", "limit")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    MIN_CALLS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    project_id: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    filter: SpanFilter
    min_calls: int
    limit: int
    def __init__(self, organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., filter: _Optional[_Union[SpanFilter, _Mapping]] = ..., min_calls: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class SpanExample(_message.Message):
    __slots__ = ("trace_id", "span_id")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    span_id: str
    def __init__(self, trace_id: _Optional[str] = ..., span_id: _Optional[str] = ...) -> None: ...

class PromptVersion(_message.Message):
    __slots__ = ("id", "source", "name", "version", "fingerprint", "template", "first_seen", "last_seen", "calls", "errors", "error_rate", "input_tokens", "output_tokens", "cost_usd", "cost_per_call_usd", "latency_ms", "models", "example")
    ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    COST_PER_CALL_USD_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_FIELD_NUMBER: _ClassVar[int]
    id: str
    source: str
    name: str
    version: str
    fingerprint: str
    template: str
    first_seen: str
    last_seen: str
    calls: int
    errors: int
    error_rate: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cost_per_call_usd: float
    latency_ms: LatencyPercentiles
    models: _containers.RepeatedScalarFieldContainer[str]
    example: SpanExample
    def __init__(self, id: _Optional[str] = ..., source: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., fingerprint: _Optional[str] = ..., template: _Optional[str] = ..., first_seen: _Optional[str] = ..., last_seen: _Optional[str] = ..., calls: _Optional[int] = ..., errors: _Optional[int] = ..., error_rate: _Optional[float] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., cost_per_call_usd: _Optional[float] = ..., latency_ms: _Optional[_Union[LatencyPercentiles, _Mapping]] = ..., models: _Optional[_Iterable[str]] = ..., example: _Optional[_Union[SpanExample, _Mapping]] = ...) -> None: ...

class PromptVersionsResponse(_message.Message):
    __slots__ = ("start_time", "end_time", "total_calls", "identified_calls", "unidentified_calls", "truncated", "versions")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CALLS_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIED_CALLS_FIELD_NUMBER: _ClassVar[int]
    UNIDENTIFIED_CALLS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    start_time: str
    end_time: str
    total_calls: int
    identified_calls: int
    unidentified_calls: int
    truncated: bool
    versions: _containers.RepeatedCompositeFieldContainer[PromptVersion]
    def __init__(self, start_time: _Optional[str] = ..., end_time: _Optional[str] = ..., total_calls: _Optional[int] = ..., identified_calls: _Optional[int] = ..., unidentified_calls: _Optional[int] = ..., truncated: _Optional[bool] = ..., versions: _Optional[_Iterable[_Union[PromptVersion, _Mapping]]] = ...) -> None: ...

class ComparePromptVersionsRequest(_message.Message):
    __slots__ = ("organization_id", "project_id", "start_time_unix_nano", "end_time_unix_nano", "filter", "a", "b")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    project_id: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    filter: SpanFilter
    a: str
    b: str
    def __init__(self, organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., filter: _Optional[_Union[SpanFilter, _Mapping]] = ..., a: _Optional[str] = ..., b: _Optional[str] = ...) -> None: ...

class PromptVersionDelta(_message.Message):
    __slots__ = ("calls", "error_rate", "latency_p50_ms", "latency_p95_ms", "cost_per_call_usd", "input_tokens_per_call", "output_tokens_per_call")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    COST_PER_CALL_USD_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_PER_CALL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_PER_CALL_FIELD_NUMBER: _ClassVar[int]
    calls: int
    error_rate: float
    latency_p50_ms: float
    latency_p95_ms: float
    cost_per_call_usd: float
    input_tokens_per_call: float
    output_tokens_per_call: float
    def __init__(self, calls: _Optional[int] = ..., error_rate: _Optional[float] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ..., cost_per_call_usd: _Optional[float] = ..., input_tokens_per_call: _Optional[float] = ..., output_tokens_per_call: _Optional[float] = ...) -> None: ...

class ErrorRateTest(_message.Message):
    __slots__ = ("method", "p_value")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    method: str
    p_value: float
    def __init__(self, method: _Optional[str] = ..., p_value: _Optional[float] = ...) -> None: ...

class LatencyTest(_message.Message):
    __slots__ = ("method", "u", "p_value", "probability_b_slower")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    U_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_B_SLOWER_FIELD_NUMBER: _ClassVar[int]
    method: str
    u: float
    p_value: float
    probability_b_slower: float
    def __init__(self, method: _Optional[str] = ..., u: _Optional[float] = ..., p_value: _Optional[float] = ..., probability_b_slower: _Optional[float] = ...) -> None: ...

class ComparePromptVersionsResponse(_message.Message):
    __slots__ = ("start_time", "end_time", "a", "b", "delta", "error_rate_test", "latency_test")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_TEST_FIELD_NUMBER: _ClassVar[int]
    LATENCY_TEST_FIELD_NUMBER: _ClassVar[int]
    start_time: str
    end_time: str
    a: PromptVersion
    b: PromptVersion
    delta: PromptVersionDelta
    error_rate_test: ErrorRateTest
    latency_test: LatencyTest
    def __init__(self, start_time: _Optional[str] = ..., end_time: _Optional[str] = ..., a: _Optional[_Union[PromptVersion, _Mapping]] = ..., b: _Optional[_Union[PromptVersion, _Mapping]] = ..., delta: _Optional[_Union[PromptVersionDelta, _Mapping]] = ..., error_rate_test: _Optional[_Union[ErrorRateTest, _Mapping]] = ..., latency_test: _Optional[_Union[LatencyTest, _Mapping]] = ...) -> None: ...

class ReplayTraceRequest(_message.Message):
    __slots__ = ("trace_id", "organization_id", "project_id", "span_id", "model", "base_url", "base_urls", "api_keys")
    class BaseUrlsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ApiKeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    BASE_URLS_FIELD_NUMBER: _ClassVar[int]
    API_KEYS_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    organization_id: str
    project_id: str
    span_id: str
    model: str
    base_url: str
    base_urls: _containers.ScalarMap[str, str]
    api_keys: _containers.ScalarMap[str, str]
    def __init__(self, trace_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., span_id: _Optional[str] = ..., model: _Optional[str] = ..., base_url: _Optional[str] = ..., base_urls: _Optional[_Mapping[str, str]] = ..., api_keys: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ReplayCallSide(_message.Message):
    __slots__ = ("model", "response_model", "output", "finish_reasons", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd", "latency_ms")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASONS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    model: str
    response_model: str
    output: str
    finish_reasons: _containers.RepeatedScalarFieldContainer[str]
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float
    latency_ms: float
    def __init__(self, model: _Optional[str] = ..., response_model: _Optional[str] = ..., output: _Optional[str] = ..., finish_reasons: _Optional[_Iterable[str]] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cache_read_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ..., reasoning_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class ReplayCallDiff(_message.Message):
    __slots__ = ("original_span_id", "replay_span_id", "name", "provider", "error", "original", "replay", "output_changed", "output_diff", "input_tokens_delta", "output_tokens_delta", "cost_delta_usd", "latency_delta_ms")
    ORIGINAL_SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    REPLAY_SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_FIELD_NUMBER: _ClassVar[int]
    REPLAY_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_CHANGED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DIFF_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_DELTA_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_DELTA_FIELD_NUMBER: _ClassVar[int]
    COST_DELTA_USD_FIELD_NUMBER: _ClassVar[int]
    LATENCY_DELTA_MS_FIELD_NUMBER: _ClassVar[int]
    original_span_id: str
    replay_span_id: str
    name: str
    provider: str
    error: str
    original: ReplayCallSide
    replay: ReplayCallSide
    output_changed: bool
    output_diff: str
    input_tokens_delta: int
    output_tokens_delta: int
    cost_delta_usd: float
    latency_delta_ms: float
    def __init__(self, original_span_id: _Optional[str] = ..., replay_span_id: _Optional[str] = ..., name: _Optional[str] = ..., provider: _Optional[str] = ..., error: _Optional[str] = ..., original: _Optional[_Union[ReplayCallSide, _Mapping]] = ..., replay: _Optional[_Union[ReplayCallSide, _Mapping]] = ..., output_changed: _Optional[bool] = ..., output_diff: _Optional[str] = ..., input_tokens_delta: _Optional[int] = ..., output_tokens_delta: _Optional[int] = ..., cost_delta_usd: _Optional[float] = ..., latency_delta_ms: _Optional[float] = ...) -> None: ...

class ReplayTotals(_message.Message):
    __slots__ = ("original_cost_usd", "replay_cost_usd", "cost_delta_usd", "original_input_tokens", "replay_input_tokens", "original_output_tokens", "replay_output_tokens", "original_latency_ms", "replay_latency_ms")
    ORIGINAL_COST_USD_FIELD_NUMBER: _ClassVar[int]
    REPLAY_COST_USD_FIELD_NUMBER: _ClassVar[int]
    COST_DELTA_USD_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REPLAY_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REPLAY_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    REPLAY_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    original_cost_usd: float
    replay_cost_usd: float
    cost_delta_usd: float
    original_input_tokens: int
    replay_input_tokens: int
    original_output_tokens: int
    replay_output_tokens: int
    original_latency_ms: float
    replay_latency_ms: float
    def __init__(self, original_cost_usd: _Optional[float] = ..., replay_cost_usd: _Optional[float] = ..., cost_delta_usd: _Optional[float] = ..., original_input_tokens: _Optional[int] = ..., replay_input_tokens: _Optional[int] = ..., original_output_tokens: _Optional[int] = ..., replay_output_tokens: _Optional[int] = ..., original_latency_ms: _Optional[float] = ..., replay_latency_ms: _Optional[float] = ...) -> None: ...

class ReplayTraceResponse(_message.Message):
    __slots__ = ("original_trace_id", "replay_trace_id", "replay_root_span_id", "exported", "calls", "totals")
    ORIGINAL_TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    REPLAY_TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    REPLAY_ROOT_SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    EXPORTED_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    original_trace_id: str
    replay_trace_id: str
    replay_root_span_id: str
    exported: bool
    calls: _containers.RepeatedCompositeFieldContainer[ReplayCallDiff]
    totals: ReplayTotals
    def __init__(self, original_trace_id: _Optional[str] = ..., replay_trace_id: _Optional[str] = ..., replay_root_span_id: _Optional[str] = ..., exported: _Optional[bool] = ..., calls: _Optional[_Iterable[_Union[ReplayCallDiff, _Mapping]]] = ..., totals: _Optional[_Union[ReplayTotals, _Mapping]] = ...) -> None: ...
