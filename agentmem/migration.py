"""Moving data into and between agentmem backends.

- :func:`import_agentscope_redis` reads what AgentScope Runtime 1.0's Redis services
  stored (memory hashes ``user_memory:<user>`` with one JSON list of messages per
  session field; sessions ``session:<user>:<session>`` holding a Session's JSON; state
  hashes ``user_state:<user>:<session>`` with round ids as fields and JSON states as
  values) and writes it through any agentmem services.
- :func:`export_user` and :func:`import_user` copy one user's data between any two
  backends as JSON lines, using only the abstract service APIs.

Both write through the services' public methods, so the target validates everything;
import into an empty target (importing twice adds memories twice). The command line
offers the same as ``agentmem redis import-agentscope|export|import``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from agentmem._validation import DEFAULT_SESSION_ID
from agentmem.schemas.agent_schemas import Message
from agentmem.schemas.session import Session
from agentmem.services.agent_state.state_service import StateService
from agentmem.services.memory.memory_service import MemoryService
from agentmem.services.session_history.session_history_service import SessionHistoryService

if TYPE_CHECKING:
    from agentmem.services._redis import RedisClient

__all__ = [
    "MigrationReport",
    "export_user",
    "import_agentscope_redis",
    "import_user",
    "redis_command_arguments",
    "run_redis_command",
]

logger = logging.getLogger(__name__)

_PAGE_SIZE = 1000


@dataclass
class MigrationReport:
    """What an import wrote, and what it skipped (with the reason) instead of failing."""

    memories: int = 0
    sessions: int = 0
    messages: int = 0
    states: int = 0
    skipped: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        logger.warning("skipped during import: %s", reason)
        self.skipped.append(reason)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


async def _scan(client: RedisClient, pattern: str) -> AsyncIterator[str]:
    # A one-off migration may scan: AgentScope Runtime 1.0 kept no index of its keys.
    async for key in client.scan_iter(match=pattern, count=1000):
        yield _text(key)


def _split_user_session(rest: str, user_ids: frozenset[str]) -> tuple[str, str]:
    """``<user>:<session>`` split at the known user id it starts with, else at the first ':'."""
    for user_id in sorted(user_ids, key=len, reverse=True):
        if rest.startswith(user_id + ":"):
            return user_id, rest[len(user_id) + 1 :]
    user_id, _, session_id = rest.partition(":")
    return user_id, session_id


async def import_agentscope_redis(
    source: RedisClient,
    *,
    memory: MemoryService | None = None,
    sessions: SessionHistoryService | None = None,
    states: StateService | None = None,
    user_ids: Iterable[str] = (),
) -> MigrationReport:
    """Copy AgentScope Runtime 1.0's Redis data from ``source`` into agentmem services.

    Each kind is imported only when its target service is given. AgentScope's state
    keys ``user_state:<user>:<session>`` are ambiguous when a user id contains ``:``;
    they are split at the longest user id of ``user_ids`` or of the imported memories
    and sessions that the key starts with, else at the first ``:``. Entries that cannot
    be decoded are skipped, logged and listed in the report; everything else is copied.
    """
    report = MigrationReport()
    known = set(user_ids)
    if memory is not None:
        async for key in _scan(source, "user_memory:*"):
            user_id = key.removeprefix("user_memory:")
            known.add(user_id)
            fields = await source.hgetall(key)
            # AgentScope listed a user's memories session by session in sorted order.
            for raw_session in sorted(fields, key=_text):
                session_id = _text(raw_session)
                try:
                    messages = [Message.model_validate(m) for m in json.loads(fields[raw_session])]
                except ValueError as exc:
                    report.skip(f"{key} field {session_id!r}: {exc}")
                    continue
                if messages:
                    await memory.add_memory(user_id, messages, session_id=session_id)
                    report.memories += len(messages)
    if sessions is not None:
        async for key in _scan(source, "session:*"):
            raw = await source.get(key)
            try:
                session = Session.model_validate_json(raw or b"")
            except ValueError as exc:
                report.skip(f"{key}: {exc}")
                continue
            known.add(session.user_id)
            created = await sessions.create_session(session.user_id, session.id)
            if session.messages:
                await sessions.append_message(created, session.messages)
            report.sessions += 1
            report.messages += len(session.messages)
    if states is not None:
        frozen = frozenset(known)
        async for key in _scan(source, "user_state:*"):
            user_id, session_id = _split_user_session(key.removeprefix("user_state:"), frozen)
            for raw_round, raw_state in sorted((await source.hgetall(key)).items()):
                round_text = _text(raw_round)
                try:
                    state = json.loads(raw_state)
                    round_id = int(round_text)
                    await states.save_state(
                        user_id, state, session_id=session_id or None, round_id=round_id
                    )
                except (ValueError, TypeError) as exc:
                    report.skip(f"{key} round {round_text!r}: {exc}")
                    continue
                report.states += 1
    return report


async def _session_ids(
    user_id: str, sessions: SessionHistoryService | None, extra: Iterable[str]
) -> list[str]:
    found = dict.fromkeys([DEFAULT_SESSION_ID, *extra])
    if sessions is not None:
        found.update(dict.fromkeys(s.id for s in await sessions.list_sessions(user_id)))
    return list(found)


async def _all_memories(
    memory: MemoryService, user_id: str, session_id: str | None = None
) -> list[Message]:
    found: list[Message] = []
    page = 1
    while True:
        filters: dict[str, Any] = {"page_num": page, "page_size": _PAGE_SIZE}
        if session_id is not None:
            filters["session_id"] = session_id
        batch = await memory.list_memory(user_id, filters)
        found.extend(batch)
        if len(batch) < _PAGE_SIZE:
            return found
        page += 1


async def export_user(
    user_id: str,
    out: TextIO,
    *,
    memory: MemoryService | None = None,
    sessions: SessionHistoryService | None = None,
    states: StateService | None = None,
    session_ids: Iterable[str] = (),
) -> int:
    """Write one user's data to ``out`` as JSON lines; returns the number of lines.

    Lines are ``{"type": "session" | "memory" | "state", "user_id": ..., ...}``. The
    abstract APIs cannot enumerate a user's memory or state sessions, so those are
    looked up in ``"default"``, the sessions of ``sessions`` and ``session_ids``;
    memories found in none of them are exported with ``"session_id": null`` (imported
    into ``"default"``). Memories keep their order; their creation times are not kept.
    """
    known = await _session_ids(user_id, sessions, session_ids)
    lines = 0

    def write(record: dict[str, Any]) -> None:
        nonlocal lines
        out.write(json.dumps({"user_id": user_id, **record}, ensure_ascii=False) + "\n")
        lines += 1

    if sessions is not None:
        for listed in await sessions.list_sessions(user_id):
            session = await sessions.get_session(user_id, listed.id)
            messages = [m.model_dump(mode="json") for m in session.messages]
            write({"type": "session", "session_id": session.id, "messages": messages})
    if memory is not None:
        owners: dict[str, deque[str]] = {}
        if "list_by_session" in memory.capabilities:
            for session_id in known:
                for message in await _all_memories(memory, user_id, session_id):
                    owners.setdefault(message.id, deque()).append(session_id)
        for message in await _all_memories(memory, user_id):
            queue = owners.get(message.id)
            owner = queue.popleft() if queue else None
            write(
                {"type": "memory", "session_id": owner, "message": message.model_dump(mode="json")}
            )
    if states is not None:
        for session_id in known:
            for round_id in await states.list_states(user_id, session_id):
                state = await states.export_state(user_id, session_id, round_id)
                if state is not None:
                    write(
                        {
                            "type": "state",
                            "session_id": session_id,
                            "round_id": round_id,
                            "state": state,
                        }
                    )
    return lines


async def import_user(
    lines: Iterable[str],
    *,
    memory: MemoryService | None = None,
    sessions: SessionHistoryService | None = None,
    states: StateService | None = None,
) -> MigrationReport:
    """Write the JSON lines of :func:`export_user` through the given services.

    Records of a kind whose service is not given are skipped; a line that is not a
    valid record is skipped and reported. Memories are added in their exported order,
    consecutive ones of one session in one call.
    """
    report = MigrationReport()
    batch: list[Message] = []
    batch_owner: tuple[str, str | None] | None = None

    async def flush() -> None:
        nonlocal batch
        if memory is not None and batch and batch_owner is not None:
            await memory.add_memory(batch_owner[0], batch, session_id=batch_owner[1])
            report.memories += len(batch)
        batch = []

    for number, line in enumerate(_non_blank(lines), start=1):
        try:
            record = json.loads(line)
            kind, user_id = record["type"], record["user_id"]
            if kind == "memory" and memory is not None:
                owner = (user_id, record.get("session_id"))
                if owner != batch_owner:
                    await flush()
                    batch_owner = owner
                batch.append(Message.model_validate(record["message"]))
            elif kind == "session" and sessions is not None:
                session = await sessions.create_session(user_id, record["session_id"])
                messages = [Message.model_validate(m) for m in record["messages"]]
                if messages:
                    await sessions.append_message(session, messages)
                report.sessions += 1
                report.messages += len(messages)
            elif kind == "state" and states is not None:
                await states.save_state(
                    user_id, record["state"], record["session_id"], record["round_id"]
                )
                report.states += 1
        except (ValueError, TypeError, KeyError) as exc:
            report.skip(f"line {number}: {exc!r}")
    await flush()
    return report


def _non_blank(lines: Iterable[str]) -> Iterator[str]:
    return (line for line in lines if line.strip())


def redis_command_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``agentmem redis``."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    source = actions.add_parser(
        "import-agentscope", help="import AgentScope Runtime 1.0's Redis data into agentmem"
    )
    source.add_argument("--from", dest="source", required=True, help="AgentScope's Redis URL")
    for name, help_text in (
        ("export", "write one user's data as JSON lines"),
        ("import", "read JSON lines written by export"),
    ):
        action = actions.add_parser(name, help=help_text)
        if name == "export":
            action.add_argument("--user", required=True, help="the user id to export")
            action.add_argument(
                "--session", action="append", default=[], help="a further session id to export"
            )
        action.add_argument("--file", help="the JSON lines file (default: stdout/stdin)")
    for action in actions.choices.values():
        action.add_argument(
            "--url",
            required=True,
            help="agentmem's Redis URL (redis+cluster://... for a cluster)",
        )
        action.add_argument("--key-prefix", default="agentmem", help="agentmem's key prefix")
        action.add_argument(
            "--ttl-seconds",
            type=int,
            default=None,
            help="expiry of written data (default: never)",
        )


async def _run(args: argparse.Namespace, stream: TextIO) -> int:
    from agentmem.services.agent_state.redis_state_service import RedisStateService
    from agentmem.services.memory.redis_memory_service import RedisMemoryService
    from agentmem.services.session_history.redis_session_history_service import (
        RedisSessionHistoryService,
    )

    options: dict[str, Any] = {"key_prefix": args.key_prefix, "ttl_seconds": args.ttl_seconds}
    async with (
        RedisMemoryService(args.url, **options) as memory,
        RedisSessionHistoryService(args.url, **options) as sessions,
        RedisStateService(args.url, **options) as states,
    ):
        services: dict[str, Any] = {"memory": memory, "sessions": sessions, "states": states}
        if args.action == "export":
            lines = await export_user(args.user, stream, session_ids=args.session, **services)
            print(f"exported {lines} lines", file=sys.stderr)
            return 0
        if args.action == "import":
            report = await import_user(stream, **services)
        else:
            import redis.asyncio

            source = redis.asyncio.Redis.from_url(args.source)
            try:
                report = await import_agentscope_redis(source, **services)
            finally:
                await source.aclose()
    print(
        f"imported {report.memories} memories, {report.sessions} sessions "
        f"({report.messages} messages), {report.states} states; "
        f"skipped {len(report.skipped)}",
        file=sys.stderr,
    )
    return 1 if report.skipped else 0


def run_redis_command(args: argparse.Namespace) -> int:
    """Run ``agentmem redis <action>``; exit status 1 if anything was skipped."""
    with contextlib.ExitStack() as files:
        stream = sys.stdout if args.action == "export" else sys.stdin
        if getattr(args, "file", None):
            mode = "w" if args.action == "export" else "r"
            stream = files.enter_context(open(args.file, mode, encoding="utf-8"))
        return asyncio.run(_run(args, stream))
