"""The ``agentmem`` command line: ``agentmem <command> [options]``.

Each command registers itself in :data:`COMMANDS` with a function that adds its arguments
to a subparser and a function that runs it; add new commands the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from agentmem.migration import redis_command_arguments, run_redis_command

__all__ = ["COMMANDS", "main"]


class Command(NamedTuple):
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _sandbox_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (8000; 0 picks a free one)")
    parser.add_argument(
        "--token",
        default=os.environ.get("AGENTMEM_SANDBOX_TOKEN"),
        help="bearer token clients must send; required. Prefer $AGENTMEM_SANDBOX_TOKEN (the "
        "default): other local users can read command lines",
    )
    parser.add_argument(
        "--isolation",
        choices=["auto", "bubblewrap", "process"],
        default="auto",
        help="bubblewrap namespaces, plain processes, or auto (bubblewrap when it works)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=3600.0,
        help="release sessions unused for this many seconds (3600; 0 never)",
    )
    parser.add_argument(
        "--limits",
        default="{}",
        metavar="JSON",
        help='SandboxLimits fields as JSON, e.g. \'{"timeout_seconds": 60, "processes": 64}\'',
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (to register custom sandbox types); repeatable",
    )


def _sandbox_server(args: argparse.Namespace) -> int:
    import importlib

    from agentmem.services.sandbox.models import SandboxLimits
    from agentmem.services.sandbox.server import serve

    if not args.token:
        print(
            "agentmem sandbox-server: --token (or $AGENTMEM_SANDBOX_TOKEN) is required",
            file=sys.stderr,
        )
        return 2
    for module in args.imports:
        importlib.import_module(module)
    try:
        limits = SandboxLimits.model_validate_json(args.limits)
    except ValueError as exc:
        print(f"agentmem sandbox-server: bad --limits: {exc}", file=sys.stderr)
        return 2
    serve(
        host=args.host,
        port=args.port,
        token=args.token,
        isolation=args.isolation,
        limits=limits,
        idle_timeout=args.idle_timeout or None,
    )
    return 0


COMMANDS: dict[str, Command] = {
    "sandbox-server": Command(
        help="serve sandboxes over HTTP to remote SandboxService clients",
        add_arguments=_sandbox_server_arguments,
        run=_sandbox_server,
    ),
    "redis": Command(
        help="import AgentScope Runtime 1.0 Redis data; export/import a user as JSON lines",
        add_arguments=redis_command_arguments,
        run=run_redis_command,
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentmem", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(commands.add_parser(name, help=command.help))
    args = parser.parse_args(argv)
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
