"""The ``llm-observer`` command."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import Any

from llm_observer.collector.config import Config, effective_yaml, load_config
from llm_observer.kernel import c_heap
from llm_observer.kernel.errors import ConfigError
from llm_observer.kernel.threads import named_thread_pool


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


def _print_unavailable(error: ConfigError) -> None:
    count = len(error.problems)
    print(
        f"error: cannot start: {count} listen address{'es are' if count > 1 else ' is'} unavailable:",
        file=sys.stderr,
    )
    for path, message in error.problems:
        print(f"  {path}: {message}", file=sys.stderr)
    print(
        "Stop whatever holds the port (another llm-observer?), or move the endpoint in a config file "
        "(--config FILE; set a port to 0 to pick a free one).",
        file=sys.stderr,
    )


def _run(args: argparse.Namespace, collector: bool, query: bool) -> int:
    # Before any thread starts: the heaps glibc makes for threads keep their free memory apart.
    c_heap.limit_arenas()
    from llm_observer.collector.service import Service, run_until_signalled
    from llm_observer.kernel.servers import PortsUnavailable

    config = load_config(args.config, data_dir=args.data_dir)
    _setup_logging(config)
    service = Service(config, collector=collector, query=query)
    # Batch processing holds the GIL in long stretches; a shorter switch interval lets the event loop,
    # which acknowledges clients, get it back sooner.
    sys.setswitchinterval(0.001)
    # Every span makes a few dicts: with the default thresholds the cyclic collector runs every few hundred
    # spans and, in its full passes, walks every module, model and buffer loaded at start. Those are frozen
    # out of its reach and the young generation made larger (the spans themselves hold no cycles).
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)

    async def main() -> None:
        # The pool the exporters convert and insert batches in, named so that its CPU can be told apart.
        asyncio.get_running_loop().set_default_executor(named_thread_pool("asyncio"))
        await run_until_signalled(service)

    try:
        asyncio.run(main())
    except PortsUnavailable as exc:
        _print_unavailable(exc)
        return 1
    return 0


def _validate(args: argparse.Namespace) -> int:
    load_config(args.config)
    print(f"{args.config}: valid")
    return 0


def _show(args: argparse.Namespace) -> int:
    print(effective_yaml(load_config(args.config, data_dir=getattr(args, "data_dir", None))), end="")
    return 0


def _deadletter_store(args: argparse.Namespace) -> Any:
    from llm_observer.collector.deadletter import DeadLetterStore
    from llm_observer.collector.service import DEADLETTER_DIR

    data_dir = args.data_dir
    if data_dir is None:
        data_dir = load_config(args.config).data_dir
    return DeadLetterStore(Path(data_dir).resolve() / DEADLETTER_DIR)


def _deadletter_ids(store: Any, args: argparse.Namespace) -> list[str]:
    if args.all:
        return [entry.id for entry in store.entries()]
    if not args.ids:
        raise ConfigError([("deadletter", "name entries by id, or pass --all")])
    return list(args.ids)


def _deadletter(args: argparse.Namespace) -> int:
    """``llm-observer deadletter list|show|replay|drop``: the spans exporters could not deliver."""
    store = _deadletter_store(args)
    action = args.deadletter_command
    if action == "list":
        entries = store.entries()
        if args.json:
            print(json.dumps([entry.summary() for entry in entries], indent=2))
            return 0
        if not entries:
            print(f"no dead-letter entries in {store.directory}")
            return 0
        for entry in entries:
            orgs = ",".join(f"{org}={n}" for org, n in sorted(entry.organizations.items()))
            state = "replay requested" if entry.replay_requested else "quarantined"
            print(
                f"{entry.id}  {entry.consumer}  {entry.spans} spans  {entry.reason}  [{orgs}]  {state}\n"
                f"    {entry.message}"
            )
        return 0
    failed = 0
    for entry_id in _deadletter_ids(store, args):
        try:
            if action == "show":
                entry, batch = store.load(entry_id)
                print(json.dumps(entry.summary(), indent=2))
                for row in range(len(batch)):
                    print(
                        f"  {batch.trace_id[row].hex()} {batch.span_id[row].hex()} {batch.name[row]!r} "
                        f"start={batch.start_time_unix_nano[row]}"
                    )
            elif action == "replay":
                store.request_replay(entry_id)
                print(
                    f"{entry_id}: replay requested; a running collector delivers it within seconds, "
                    "otherwise the next start does"
                )
            else:
                store.remove(entry_id)
                print(f"{entry_id}: dropped")
        except KeyError:
            print(f"no dead-letter entry {entry_id!r} in {store.directory}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


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
    deadletter = sub.add_parser(
        "deadletter", help="spans an exporter could not deliver: list, show, replay or drop them"
    )
    dl_sub = deadletter.add_subparsers(dest="deadletter_command", required=True)
    for name, text in (
        ("list", "list the quarantined sets"),
        ("show", "print entries and their spans"),
        ("replay", "deliver entries again to the exporter they came from (running or at next start)"),
        ("drop", "delete entries for good"),
    ):
        action = dl_sub.add_parser(name, help=text)
        with_config(action, required=False)
        if name == "list":
            action.add_argument("--json", action="store_true", help="print JSON")
        else:
            action.add_argument("ids", nargs="*", help="entry ids (see list)")
            action.add_argument("--all", action="store_true", help="every entry")
        action.set_defaults(func=_deadletter)
    # Other distributions add their subcommands (the query service's ``traces``) through entry points.
    for ep in entry_points(group="llm_observer.commands"):
        ep.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        # Flushed here, not at exit: a reader that went away (`| head`) is then noticed below.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # As other command-line tools: stop quietly when the reader has gone. Point stdout at /dev/null so
        # that the interpreter's last flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1
    except ConfigError as exc:
        _print_problems(exc)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
