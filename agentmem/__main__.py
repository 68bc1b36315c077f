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


_SANDBOX_SERVER_DESCRIPTION = """\
Serve sandboxes over HTTP to remote SandboxService clients.

Every request carries a bearer token. Two modes:

  single token   --token T, or $AGENTMEM_SANDBOX_TOKEN: whoever holds the token may
                 act for any user id, so every client can reach every user's
                 sandboxes. Only for a deployment serving one tenant.
  per user       --tokens-file F, or $AGENTMEM_SANDBOX_TOKENS_FILE: F is a JSON object
                 mapping each token to the user ids it may act for, e.g.
                 {"<token of app A>": ["alice", "bob"], "<token of app B>": ["carol"]}
                 (readable by its owner only: chmod 600). A request for another
                 user's sandbox gets 403 and runs nothing; user_id is required.

The server's limits are maxima: clients may ask for shorter timeouts, never longer
ones. Larger request bodies get 413, connects beyond the sandbox caps get 429."""


def _sandbox_server_arguments(parser: argparse.ArgumentParser) -> None:
    from agentmem.services.sandbox.models import ServerLimits

    parser.description = _SANDBOX_SERVER_DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (8000; 0 picks a free one)")
    parser.add_argument(
        "--token",
        default=os.environ.get("AGENTMEM_SANDBOX_TOKEN"),
        help="single-token mode: the bearer token clients must send. Prefer "
        "$AGENTMEM_SANDBOX_TOKEN (the default): other local users can read command lines",
    )
    parser.add_argument(
        "--tokens-file",
        default=os.environ.get("AGENTMEM_SANDBOX_TOKENS_FILE"),
        metavar="FILE",
        help="per-user mode: JSON file mapping each token to the user ids it may act for "
        "(default $AGENTMEM_SANDBOX_TOKENS_FILE)",
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
        metavar="SECONDS",
        help="release sessions unused for this many seconds (3600; 0 never)",
    )
    parser.add_argument(
        "--limits",
        default="{}",
        metavar="JSON",
        help='SandboxLimits fields as JSON, e.g. \'{"timeout_seconds": 60, "processes": 64}\'',
    )
    defaults = ServerLimits()
    for flag, field, meaning in (
        ("--max-request-bytes", "max_request_bytes", "larger request bodies get 413"),
        ("--max-sandboxes", "max_sandboxes", "live sandboxes in all; more get 429"),
        (
            "--max-sandboxes-per-user",
            "max_sandboxes_per_user",
            "live sandboxes per user id; more get 429",
        ),
    ):
        default = getattr(defaults, field)
        parser.add_argument(
            flag, type=int, default=default, metavar="N", help=f"{meaning} ({default})"
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

    from agentmem.services.sandbox.models import SandboxLimits, ServerLimits
    from agentmem.services.sandbox.server import Tokens, serve

    def fail(message: str) -> int:
        print(f"agentmem sandbox-server: {message}", file=sys.stderr)
        return 2

    if args.token and args.tokens_file:
        return fail("give either a token (single-token mode) or a tokens file (per-user mode)")
    try:
        if args.tokens_file:
            tokens = Tokens.from_file(args.tokens_file)
        elif args.token:
            tokens = Tokens.single(args.token)
        else:
            return fail(
                "--token (or $AGENTMEM_SANDBOX_TOKEN) or --tokens-file "
                "(or $AGENTMEM_SANDBOX_TOKENS_FILE) is required"
            )
        limits = SandboxLimits.model_validate_json(args.limits)
        server_limits = ServerLimits(
            max_request_bytes=args.max_request_bytes,
            max_sandboxes=args.max_sandboxes,
            max_sandboxes_per_user=args.max_sandboxes_per_user,
        )
    except OSError as exc:
        return fail(f"cannot read the tokens file: {exc}")
    except ValueError as exc:
        return fail(str(exc))
    for module in args.imports:
        importlib.import_module(module)
    serve(
        host=args.host,
        port=args.port,
        tokens=tokens,
        isolation=args.isolation,
        limits=limits,
        server_limits=server_limits,
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
