"""Reloading the config file: SIGHUP, ``Service.reload`` and ``AlertingApi.reload`` give the running
alerting extension its new rules; a bad file changes nothing and says what is wrong."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import pytest

from llm_observer.collector.config import load_config
from llm_observer.collector.service import Service, run_until_signalled
from llm_observer.kernel.errors import ConfigError
from llm_observer.query.alerting.component import AlertingService
from tests.support.waiting import wait_for


def rules_yaml(*names: str, extra: str = "") -> str:
    rules = "".join(
        f"    - {{name: {name}, kind: threshold, measure: latency_p95, threshold: 1000{extra}}}\n"
        for name in names
    )
    return f"alerting:\n  evaluation_interval: 1h\n  rules:\n{rules}"


def write_config(path: Path, text: str) -> None:
    # Written whole then renamed, as editors and config managers do: a reload never reads half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text("service:\n  extensions: [alerting]\n" + text)
    tmp.replace(path)


def rule_names(service: Service) -> list[str]:
    alerting = service.extensions["alerting"]
    assert isinstance(alerting, AlertingService)
    return [r.name for r in alerting.rules(None)]


async def test_reload_picks_up_new_rules_and_keeps_them_on_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    write_config(path, rules_yaml("Slow"))
    service = Service(load_config(path, data_dir=tmp_path), collector=False, query=True)
    await service.start()
    try:
        assert rule_names(service) == ["Slow"]
        write_config(path, rules_yaml("Slow", "Slower"))
        await service.reload()
        assert rule_names(service) == ["Slow", "Slower"]
        engine = service.extensions["alerting"].engine  # type: ignore[attr-defined]
        assert [r.name for r in engine.config.rules] == ["Slow", "Slower"]

        # A typo in a rule: the whole file is refused, with the key's path; the running rules stay.
        write_config(path, rules_yaml("Fast", extra=", threshhold: 3"))
        with pytest.raises(ConfigError) as caught:
            await service.reload()
        assert "alerting.rules.0.threshold.threshhold" in [p for p, _ in caught.value.problems]
        assert rule_names(service) == ["Slow", "Slower"]

        # The API's reload (POST /api/v1/alerts/reload) is the same reload.
        alerting = service.extensions["alerting"]
        assert isinstance(alerting, AlertingService)
        with pytest.raises(ConfigError):
            await alerting.reload()
        write_config(path, rules_yaml("Fast"))
        await alerting.reload()
        assert rule_names(service) == ["Fast"]
    finally:
        await service.shutdown()


async def test_reload_without_a_file_is_refused(tmp_path: Path) -> None:
    overrides = {"service": {"extensions": ["alerting"]}}
    service = Service(load_config(None, data_dir=tmp_path, overrides=overrides), collector=False, query=True)
    await service.start()
    try:
        with pytest.raises(ConfigError, match="without --config"):
            await service.reload()
    finally:
        await service.shutdown()


async def test_reload_on_sighup(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="llm_observer.collector.service")
    path = tmp_path / "config.yaml"
    write_config(path, rules_yaml("Slow"))
    service = Service(load_config(path, data_dir=tmp_path), collector=False, query=True)
    running = asyncio.create_task(run_until_signalled(service))
    try:
        await wait_for(
            lambda: "alerting" in service.extensions or running.done(), what="the service to start"
        )
        assert rule_names(service) == ["Slow"]
        write_config(path, rules_yaml("Slow", "Slower"))
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: rule_names(service) == ["Slow", "Slower"], what=lambda: rule_names(service))

        write_config(path, "alerting: [not, a, mapping]\n")
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(
            lambda: any("Config reload failed" in r.getMessage() for r in caplog.records),
            what="the failed reload to be logged",
        )
        assert rule_names(service) == ["Slow", "Slower"]
    finally:
        if not running.done():  # the handler is installed only while it runs
            os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(running, 60)
    assert service.extensions == {}
