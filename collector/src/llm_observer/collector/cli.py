"""The ``llm-observer`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path

from llm_observer.collector.config import Config, effective_yaml, load_config
from llm_observer.kernel.errors import ConfigError


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _setup_logging(config: Config | None) -> None:
    level, fmt = "info", "text"
    if config is not None:
        level, fmt = config.service.telemetry.logs.level, config.service.telemetry.logs.format
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _print_problems(error: ConfigError) -> None:
    for path, message in error.problems:
        print(f"config error: {path}: {message}", file=sys.stderr)


def _run(args: argparse.Namespace, collector: bool, query: bool) -> int:
    from llm_observer.collector.service import Service, run_until_signalled

    config = load_config(args.config, data_dir=args.data_dir)
    _setup_logging(config)
    service = Service(config, collector=collector, query=query)
    # Batch processing holds the GIL in long stretches; a shorter switch interval lets the event loop,
    # which acknowledges clients, get it back sooner.
    sys.setswitchinterval(0.001)
    asyncio.run(run_until_signalled(service))
    return 0


def _validate(args: argparse.Namespace) -> int:
    load_config(args.config)
    print(f"{args.config}: valid")
    return 0


def _show(args: argparse.Namespace) -> int:
    print(effective_yaml(load_config(args.config, data_dir=getattr(args, "data_dir", None))), end="")
    return 0


def _version() -> str:
    try:
        return version("llm-observer")
    except PackageNotFoundError:  # the collector distribution installed without the server meta-package
        return version("llm-observer-collector")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-observer", description="Observability for LLM apps and agents."
    )
    parser.add_argument("--version", action="version", version=f"llm-observer {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser, required: bool) -> None:
        p.add_argument("--config", type=Path, required=required, help="YAML config, merged over the default")
        p.add_argument(
            "--data-dir", type=Path, help="where the WAL and embedded stores live (./.llm-observer)"
        )

    up = sub.add_parser("up", help="collector + its extensions (the query service) on embedded defaults")
    with_config(up, required=False)
    up.set_defaults(func=lambda a: _run(a, collector=True, query=True))
    collector = sub.add_parser("collector", help="the collector alone")
    with_config(collector, required=True)
    collector.set_defaults(func=lambda a: _run(a, collector=True, query=False))
    query = sub.add_parser("query", help="the extensions alone: the query service (with a ClickHouse server)")
    with_config(query, required=True)
    query.set_defaults(func=lambda a: _run(a, collector=False, query=True))
    validate = sub.add_parser("validate", help="check a config file")
    validate.add_argument("--config", type=Path, required=True)
    validate.set_defaults(func=_validate)
    config = sub.add_parser("config", help="config tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser("show", help="print the effective config")
    with_config(show, required=False)
    show.set_defaults(func=_show)
    # Other distributions add their subcommands (the query service's ``traces``) through entry points.
    for ep in entry_points(group="llm_observer.commands"):
        ep.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        _print_problems(exc)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
