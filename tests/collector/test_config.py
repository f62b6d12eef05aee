"""Loading the YAML config: merge over the default, env expansion, and errors that name the YAML path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from llm_observer.collector.config import effective_yaml, load_config
from llm_observer.kernel.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _problems(path: Path) -> dict[str, str]:
    """YAML path → its messages (joined), from the ``ConfigError`` loading ``path`` raises."""
    with pytest.raises(ConfigError) as raised:
        load_config(path, data_dir=path.parent)
    out: dict[str, str] = {}
    for where, message in raised.value.problems:
        out[where] = f"{out[where]}; {message}" if where in out else message
    return out


def test_config_default_validates(tmp_path: Path) -> None:
    config = load_config(None, data_dir=tmp_path)
    assert config.data_dir == tmp_path
    assert config.source == "<default>"
    pipeline = config.service.pipelines["traces"]
    assert pipeline.receivers == ["otlp", "rest"]
    assert pipeline.processors == ["tenant", "logjoin", "normalize", "attribute", "cost", "rollup"]
    assert pipeline.exporters == ["clickhouse", "spanmetrics", "vectors"]
    assert config.service.pipelines["metrics/genai"].exporters == ["prometheus"]
    otlp = config.receivers["otlp"].config
    assert otlp.protocols.grpc.endpoint == "127.0.0.1:4317"
    assert otlp.protocols.http.endpoint == "127.0.0.1:4318"
    assert otlp.protocols.grpc.max_recv_msg_size_mib == 16
    assert otlp.protocols.http.max_request_body_size_mib == 16
    assert config.exporters["prometheus"].config.endpoint == "127.0.0.1:9464"
    assert config.service.wal.mode == "disk"
    # Every component of the default is created by its registered factory.
    assert {spec.factory.type_name for spec in config.exporters.values()} == {
        "clickhouse",
        "prometheus",
        "vectors",
    }


def test_config_default_validates_without_data_dir_override() -> None:
    config = load_config(None)
    assert config.data_dir == Path("./.llm-observer")


def test_config_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    problems = _problems(_write(tmp_path, "recievers: {}\n"))
    assert list(problems) == ["recievers"]
    assert "unknown" in problems["recievers"]


def test_config_unknown_component_type_is_named(tmp_path: Path) -> None:
    problems = _problems(
        _write(
            tmp_path,
            """
            exporters:
              kafkaa/primary:
                brokers: [localhost:9092]
            """,
        )
    )
    assert list(problems) == ["exporters.kafkaa/primary"]
    assert "unknown exporter type 'kafkaa'" in problems["exporters.kafkaa/primary"]


def test_config_bad_field_value_is_named(tmp_path: Path) -> None:
    problems = _problems(
        _write(
            tmp_path,
            """
            receivers:
              otlp:
                protocols:
                  grpc:
                    max_recv_msg_size_mib: -1
            """,
        )
    )
    assert list(problems) == ["receivers.otlp.protocols.grpc.max_recv_msg_size_mib"]
    assert "greater than 0" in problems["receivers.otlp.protocols.grpc.max_recv_msg_size_mib"]


def test_config_unknown_component_key_is_named(tmp_path: Path) -> None:
    problems = _problems(
        _write(
            tmp_path,
            """
            receivers:
              otlp:
                protocols:
                  http:
                    endpoint: 127.0.0.1:4318
                    max_body: 3
            exporters:
              prometheus:
                endpiont: 127.0.0.1:9464
            service:
              wal:
                segment_size_mb: 4
            """,
        )
    )
    assert set(problems) == {
        "receivers.otlp.protocols.http.max_body",
        "exporters.prometheus.endpiont",
        "service.wal.segment_size_mb",
    }
    assert all(message == "unknown key" for message in problems.values())


def test_config_bad_endpoint_is_named(tmp_path: Path) -> None:
    problems = _problems(
        _write(
            tmp_path,
            """
            receivers:
              otlp:
                protocols:
                  grpc:
                    endpoint: localhost
            """,
        )
    )
    assert list(problems) == ["receivers.otlp.protocols.grpc.endpoint"]


def test_config_pipeline_naming_an_undefined_exporter_is_named(tmp_path: Path) -> None:
    problems = _problems(
        _write(
            tmp_path,
            """
            service:
              pipelines:
                traces:
                  receivers: [otlp]
                  exporters: [clickhouse, kafka/audit]
            """,
        )
    )
    assert list(problems) == ["service.pipelines.traces.exporters[1]"]
    assert "'kafka/audit' is not defined under exporters" in problems["service.pipelines.traces.exporters[1]"]


def test_config_pipeline_naming_an_undefined_processor_and_receiver_is_named(tmp_path: Path) -> None:
    problems = _problems(
        _write(
            tmp_path,
            """
            service:
              pipelines:
                traces:
                  receivers: [jaeger]
                  processors: [normalize, batch]
                  exporters: [clickhouse]
            """,
        )
    )
    assert set(problems) == {
        "service.pipelines.traces.receivers[0]",
        "service.pipelines.traces.processors[1]",
    }


def test_config_unset_env_var_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_OBSERVER_TEST_UNSET", raising=False)
    problems = _problems(
        _write(
            tmp_path,
            """
            exporters:
              prometheus:
                endpoint: 127.0.0.1:${LLM_OBSERVER_TEST_UNSET}
            """,
        )
    )
    assert list(problems) == ["exporters.prometheus.endpoint"]
    assert (
        "environment variable LLM_OBSERVER_TEST_UNSET is not set" in problems["exporters.prometheus.endpoint"]
    )


def test_config_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    problems = _problems(
        _write(
            tmp_path,
            """
            receivers:
              otlp:
                protocols:
                  grpc:
                    max_recv_msg_size_mib: 0
            exporters:
              nosuch: {}
            service:
              pipelines:
                traces:
                  receivers: [otlp]
                  exporters: [missing]
            """,
        )
    )
    assert set(problems) == {
        "receivers.otlp.protocols.grpc.max_recv_msg_size_mib",
        "exporters.nosuch",
        "service.pipelines.traces.exporters[0]",
    }


def test_config_unknown_top_level_key_does_not_hide_other_problems(tmp_path: Path) -> None:
    problems = _problems(
        _write(
            tmp_path,
            """
            recievers: {}
            exporters:
              prometheus:
                endpiont: 127.0.0.1:9464
            """,
        )
    )
    assert set(problems) == {"recievers", "exporters.prometheus.endpiont"}


def test_config_expands_env_vars_with_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_OBSERVER_TEST_GRPC_PORT", "14317")
    monkeypatch.setenv("LLM_OBSERVER_TEST_HOST", "0.0.0.0")
    monkeypatch.delenv("LLM_OBSERVER_TEST_HTTP_PORT", raising=False)
    path = _write(
        tmp_path,
        """
        receivers:
          otlp:
            protocols:
              grpc:
                endpoint: ${env:LLM_OBSERVER_TEST_HOST}:${LLM_OBSERVER_TEST_GRPC_PORT}
              http:
                endpoint: ${LLM_OBSERVER_TEST_HOST:-127.0.0.1}:${LLM_OBSERVER_TEST_HTTP_PORT:-14318}
        """,
    )
    protocols = load_config(path, data_dir=tmp_path).receivers["otlp"].config.protocols
    assert protocols.grpc.endpoint == "0.0.0.0:14317"
    assert protocols.http.endpoint == "0.0.0.0:14318"


def test_config_file_that_moves_an_endpoint_keeps_the_default_pipeline(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        receivers:
          otlp:
            protocols:
              grpc:
                endpoint: 0.0.0.0:5317
        """,
    )
    config = load_config(path, data_dir=tmp_path)
    default = load_config(None, data_dir=tmp_path)
    otlp = config.receivers["otlp"].config.protocols
    assert otlp.grpc.endpoint == "0.0.0.0:5317"
    assert otlp.http.endpoint == "127.0.0.1:4318"  # the sibling key is merged, not dropped
    assert config.service.pipelines == default.service.pipelines
    assert set(config.exporters) == set(default.exporters)
    assert set(config.processors) == set(default.processors)
    assert config.source == str(path)


def test_config_protocol_without_a_value_means_its_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        receivers:
          otlp:
            protocols:
              grpc:
              http:
                enabled: false
        """,
    )
    protocols = load_config(path, data_dir=tmp_path).receivers["otlp"].config.protocols
    assert (protocols.grpc.enabled, protocols.grpc.endpoint) == (True, "127.0.0.1:4317")
    assert protocols.http.enabled is False


def test_config_lists_replace_rather_than_merge(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        exporters:
          debug: {}
        service:
          pipelines:
            traces:
              receivers: [otlp]
              exporters: [debug]
        """,
    )
    pipeline = load_config(path, data_dir=tmp_path).service.pipelines["traces"]
    assert pipeline.exporters == ["debug"]
    # An unset key keeps the default.
    assert pipeline.processors == ["tenant", "logjoin", "normalize", "attribute", "cost", "rollup"]


def test_config_empty_file_is_the_default(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    assert effective_yaml(load_config(path, data_dir=tmp_path)) == effective_yaml(
        load_config(None, data_dir=tmp_path)
    )


@pytest.mark.parametrize(
    ("text", "where"),
    [("receivers: [unclosed\n", "<file>"), ("- just\n- a list\n", "<root>")],
    ids=["not-yaml", "not-a-mapping"],
)
def test_config_unreadable_file_is_a_config_error(tmp_path: Path, text: str, where: str) -> None:
    assert list(_problems(_write(tmp_path, text))) == [where]


def test_config_missing_file_is_a_config_error(tmp_path: Path) -> None:
    assert list(_problems(tmp_path / "nope.yaml")) == ["<file>"]


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    from llm_observer.collector.config import effective_yaml, load_config

    path = tmp_path / "c.yaml"
    path.write_text("exporters:\n  clickhouse:\n    endpoint: http://ch:8123\n    password: hunter2\n")
    shown = effective_yaml(load_config(path))
    assert "hunter2" not in shown
    assert "password: <redacted>" in shown
    assert "endpoint: http://ch:8123" in shown
