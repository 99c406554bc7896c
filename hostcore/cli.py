"""hostcore: capture host events with an eBPF probe and send them to sinks."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from hostcore import config as config_module
from hostcore import log, probe
from hostcore.capture.direction import LocalNets, parse_networks
from hostcore.config import Config, ConfigError
from hostcore.pipeline.filters import FilterError
from hostcore.pipeline.selection import SelectionError, event_sets
from hostcore.pipeline.tracee import FORMATS
from hostcore.plan import RunError, plan
from hostcore.plugins import PluginError, Plugins
from hostcore.probe import doctor
from hostcore.probe.cgroup import CgroupError
from hostcore.redact import redact
from hostcore.replay import replay
from hostcore.run import run
from hostcore.sinks.base import SinkClosed
from hostcore.sinks.stdout import StdoutSink
from hostcore.sources import SourceError, TailQuery

REPLAY_HOST = "replay"  # the host field of replayed events without --host-name
USER_ERRORS = (
    ConfigError,
    PluginError,
    SelectionError,
    FilterError,
    RunError,
    CgroupError,
    probe.ProbeError,
    SourceError,
)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        help=f"TOML config file (default: {config_module.DEFAULT_PATH} if it exists)",
    )
    common.add_argument(
        "--strict-plugins",
        action="store_true",
        default=None,
        help="a plugin that fails to load is fatal (also HOSTCORE_STRICT_PLUGINS=1)",
    )
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument(
        "--events",
        action="append",
        metavar="NAMES",
        help="events or event sets, comma-separated, repeatable (default: flows); "
        "or one data filter, EVENT.data.FIELD=VALUE[,VALUE...] (or !=), per flag",
    )
    output.add_argument(
        "--sink",
        action="append",
        metavar="NAME[:key=value,...]",
        help="where events go, repeatable (default: stdout); replaces the config's sinks",
    )
    output.add_argument(
        "--format",
        choices=FORMATS,
        help="the event map sinks receive: hostcore's (default) or Tracee's trace.Event JSON",
    )
    output.add_argument(
        "--host-name", help=f"the event map's host field (replay's default: {REPLAY_HOST})"
    )
    parser = argparse.ArgumentParser(prog="hostcore", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run_parser = commands.add_parser(
        "run", parents=[common, output], help="capture events until SIGINT or SIGTERM"
    )
    run_parser.add_argument(
        "--scope",
        action="append",
        metavar="FILTER",
        help="only events whose socket owner matches, repeatable: comm=, pid=, uid=, "
        "cgroup= (path or id), container, !container, container=ID (= or !=, values "
        "comma-separated, * for prefix/suffix); replaces the config's scope",
    )
    run_parser.add_argument("--cgroup", help="attach to this cgroup v2 directory, not the root")
    run_parser.add_argument(
        "--monitor",
        action="append",
        metavar="NAME[:key=value,...]",
        help="show live counters, repeatable (e.g. prometheus:listen=127.0.0.1:9464); "
        "replaces the config's monitors",
    )
    run_parser.add_argument(
        "--print-bpf",
        action="store_true",
        help="print the probe's compile flags and C source, then exit",
    )
    tail_parser = commands.add_parser(
        "tail",
        parents=[common],
        help="print stored events (e.g. a fleet's, from NATS) as run prints them",
    )
    tail_parser.add_argument("url", help="where events are stored, e.g. nats://HOST:4222")
    tail_parser.add_argument(
        "--host", action="append", default=[], help="only this host's events, repeatable"
    )
    tail_parser.add_argument(
        "--event", action="append", default=[], help="only events of this name, repeatable"
    )
    start = tail_parser.add_mutually_exclusive_group()
    start.add_argument(
        "--start-seq", type=int, metavar="N", help="start at this stream sequence (1: the start)"
    )
    start.add_argument(
        "--since",
        type=_epoch_ns,
        metavar="TIME",
        help="start at the first event stored at or after TIME (ISO 8601, e.g. 2026-11-28T06:00Z)",
    )
    tail_parser.add_argument(
        "--no-follow", action="store_true", help="stop after the events stored now"
    )
    replay_parser = commands.add_parser(
        "replay",
        parents=[common, output],
        help="turn pcap/pcapng files into events, as the live probe would have",
    )
    replay_parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    replay_parser.add_argument(
        "--local-net",
        action="append",
        metavar="CIDR",
        help="this host's addresses, repeatable; decides direction where the capture "
        "does not record it (default: private, carrier-grade NAT, loopback and link-local "
        "ranges)",
    )
    commands.add_parser(
        "events", parents=[common], help="list the events and event sets plugins provide"
    )
    commands.add_parser(
        "signatures",
        parents=[common],
        help="list installed signatures: metadata, consumed events, options",
    )
    commands.add_parser(
        "plugins", parents=[common], help="list installed plugins and their load errors"
    )
    doctor_parser = commands.add_parser(
        "doctor", parents=[common], help="check what the live probe needs"
    )
    doctor_parser.add_argument(
        "--fix", action="store_true", help="link kernel headers for bcc when they are missing"
    )
    return parser


def _epoch_ns(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from error
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (Z or +HH:MM): {text!r}")
    return int(moment.timestamp() * 10**9)


def _tail(config: Config, args: argparse.Namespace) -> int:
    sources = _plugins(config).sources()
    scheme = args.url.partition("://")[0]
    source = sources.get(scheme)
    if source is None:
        known = ", ".join(f"{name}://" for name in sorted(sources)) or "none installed"
        raise RunError(f"no source reads {args.url!r}; sources: {known} (see 'hostcore plugins')")
    query = TailQuery(
        hosts=frozenset(args.host),
        events=frozenset(args.event),
        start_seq=args.start_seq,
        start_time_ns=args.since,
        follow=not args.no_follow,
    )
    output = StdoutSink(sys.stdout)

    def show(event: Mapping[str, Any]) -> None:
        output.write(b"", event)
        output.flush()  # a follower shows each event as it comes

    # The usual ends of a follow: Ctrl-C, or a reader that went away (`| head`).
    with contextlib.suppress(KeyboardInterrupt, SinkClosed):
        source.tail(args.url, query, show)
    return 0


def _config(args: argparse.Namespace) -> Config:
    loaded = config_module.load(args.config)
    sinks = monitors = None
    if getattr(args, "sink", None):
        sinks = config_module.parse_sinks(args.sink)
    if getattr(args, "monitor", None):
        monitors = config_module.parse_sinks(args.monitor, "--monitor")
    enable = None
    if getattr(args, "events", None):
        enable = tuple(
            name
            for text in args.events
            # A data filter's values are comma-separated: it takes a whole flag.
            for name in ([text] if ".data." in text else text.split(","))
            if name
        )
    scope = getattr(args, "scope", None)
    host_name = getattr(args, "host_name", None)
    if args.command == "replay" and host_name is None:  # not this host's name: not its events
        host_name = REPLAY_HOST
    return config_module.with_overrides(
        loaded,
        enable=enable,
        scope=tuple(scope) if scope else None,
        sinks=sinks,
        monitors=monitors,
        host_name=host_name,
        format=getattr(args, "format", None),
        cgroup=getattr(args, "cgroup", None),
        # Any of the flag, the environment or the file asks for strict: CI's
        # environment must not be undone by a config file that says false.
        strict_plugins=args.strict_plugins or config_module.strict_from_environment() or None,
    )


def _plugins(config: Config) -> Plugins:
    return Plugins(config.plugins_allow, config.plugins_deny, config.strict_plugins)


def _local_nets(texts: Sequence[str] | None) -> LocalNets:
    try:
        return LocalNets(parse_networks(texts or ()))
    except ValueError as error:
        raise ConfigError(str(error)) from error


def _print_bpf(config: Config) -> int:
    the_plan = plan(config, _plugins(config))
    flags = probe.cflags(the_plan.needs, config.ring_buffer_kib, the_plan.kernel_scope)
    print("// cflags:", " ".join(flags))
    print(probe.SOURCE.read_text(), end="")
    return 0


def _events(config: Config) -> int:
    plugins = _plugins(config)
    specs = plugins.events()
    signatures = plugins.signatures(specs)
    for spec in sorted(specs.values(), key=lambda spec: spec.id):
        fields = ", ".join(f"{field.name}: {field.type}" for field in spec.fields)
        print(f"{spec.name} (id {spec.id}, plugin {spec.plugin})")
        print(f"  sets: {', '.join(spec.sets)}  depends on: {spec.depends_on or '-'}")
        print(f"  fields: {fields}")
        for option, help_text in spec.options.items():
            print(f"  option [events.{spec.name}] {option}: {help_text}")
        if spec.description:
            print(f"  {spec.description}")
    for name, members in sorted(event_sets({**specs, **signatures}).items()):
        print(f"set {name}: {', '.join(members)}")
    return 0


def _signatures(config: Config) -> int:
    plugins = _plugins(config)
    signatures = plugins.signatures(plugins.events())
    for spec in sorted(signatures.values(), key=lambda spec: spec.id):
        print(f"{spec.name} (id {spec.id}, plugin {spec.plugin}): {spec.title}")
        print(f"  {spec.signature_id} version {spec.version}, severity {spec.severity}")
        print(f"  tags: {', '.join(spec.tags) or '-'}")
        if spec.properties:
            print(f"  properties: {', '.join(f'{k}={v}' for k, v in spec.properties.items())}")
        optional = [f"{text} (if installed)" for text in spec.consumes_if_installed]
        print(f"  consumes: {', '.join([*spec.consumes, *optional])}")
        fields = ", ".join(f"{field.name}: {field.type}" for field in spec.fields)
        print(f"  fields: {fields or '-'} (and signature, triggered_by)")
        for option, help_text in spec.options.items():
            print(f"  option {option}: {help_text}")
        print(f"  {spec.description}")
    return 0


def _list_plugins(config: Config) -> int:
    plugins = _plugins(config)
    plugins.signatures(plugins.events())
    plugins.sinks()
    plugins.monitors()
    plugins.sources()
    failed = False
    for info in sorted(plugins.infos.values(), key=lambda info: info.name):
        provides = f" provides {', '.join(info.provides)}" if info.provides else ""
        print(f"{info.name}: {info.status} ({info.distribution} {info.version}){provides}")
        if info.error:
            failed = True
            print("  " + info.error.replace("\n", "\n  "))
    return 1 if failed else 0


def _doctor(fix: bool) -> int:
    failed = False
    for check in doctor.checks(fix):
        failed |= not check.ok
        print(f"{'OK  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    log.configure()
    try:
        config = _config(args)
        if args.command == "run":
            return _print_bpf(config) if args.print_bpf else run(config, _plugins(config))
        if args.command == "tail":
            return _tail(config, args)
        if args.command == "replay":
            return replay(config, _plugins(config), args.files, _local_nets(args.local_net))
        if args.command == "events":
            return _events(config)
        if args.command == "signatures":
            return _signatures(config)
        if args.command == "plugins":
            return _list_plugins(config)
        return _doctor(args.fix)
    except USER_ERRORS as error:
        print(f"hostcore: error: {redact(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside ``run``, which handles SIGINT itself
        return 130
    except BrokenPipeError:  # a listing piped to `head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
