"""Moving data into and between agentmem backends.

- :func:`import_agentscope_redis` reads what AgentScope Runtime 1.0's Redis services
  stored (memory hashes ``user_memory:<user>`` with one JSON list of messages per
  session field; sessions ``session:<user>:<session>`` holding a Session's JSON; state
  hashes ``user_state:<user>:<session>`` with round ids as fields and JSON states as
  values) and writes it through any agentmem services.
- :func:`export_user` and :func:`import_user` copy every history session, memory and
  state round of one user between any two backends as JSON lines, using only the
  abstract service APIs; memories keep their sessions, order and creation times.

Both write through the services' public methods, so the target validates everything,
and both cut what they write into calls within :data:`~agentmem.limits.MAX_BATCH_MESSAGES`
and :data:`~agentmem.limits.MAX_BATCH_BYTES`. Import into an empty target: importing
twice adds memories twice. The command line offers the same as
``agentmem redis import-agentscope|export|import``.

The export format (version 2), one JSON object a line, each carrying ``user_id``::

    {"type": "header", "format": "agentmem-export", "version": 2, "user_id": "alice"}
    {"type": "session", "user_id": "alice", "session_id": "chat", "messages": [...]}
    {"type": "memory", "user_id": "alice", "session_id": "default",
     "created_at": "2024-05-01T12:00:00.250000+00:00", "message": {...}}
    {"type": "state", "user_id": "alice", "session_id": "chat", "round_id": 3,
     "state": {...}}

History sessions come in creation order, memories oldest first, states by session and
round. Files of several users may be concatenated. Version 1 (no header line, memories
without ``created_at``, ``"session_id": null`` meaning ``"default"``) still imports;
its memories get the time of import.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from agentmem._validation import (
    check_created_at,
    check_id,
    check_messages,
    check_round_id,
    check_state,
    session_or_default,
)
from agentmem.errors import InvalidArgumentError, UnsupportedOperationError
from agentmem.limits import MAX_BATCH_BYTES, MAX_BATCH_MESSAGES
from agentmem.schemas.agent_schemas import Message
from agentmem.schemas.session import Session
from agentmem.services.agent_state.state_service import StateService
from agentmem.services.base import Capability
from agentmem.services.memory.memory_service import MemoryService
from agentmem.services.session_history.session_history_service import SessionHistoryService

if TYPE_CHECKING:
    from agentmem.services._redis import RedisClient

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "MigrationReport",
    "export_user",
    "import_agentscope_redis",
    "import_user",
    "redis_command_arguments",
    "run_redis_command",
]

logger = logging.getLogger(__name__)

# Memories read per page on export: enough to make few calls, few enough that a page of
# large messages stays small in memory.
_PAGE_SIZE = 1000

#: The ``format`` of an export's header line.
EXPORT_FORMAT = "agentmem-export"
#: The version of the export format :func:`export_user` writes; :func:`import_user`
#: reads it and every earlier one.
EXPORT_VERSION = 2


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


def _message_size(message: Message) -> int:
    # The measure the batch limit is checked with: the message's compact JSON in UTF-8.
    return len(message.model_dump_json().encode("utf-8"))


def _batch_fits(count: int, size: int, added: int) -> bool:
    """Whether a call holding ``count`` messages of ``size`` bytes takes one of ``added``."""
    return count < MAX_BATCH_MESSAGES and size + added <= MAX_BATCH_BYTES


def _batches(messages: Iterable[Message]) -> Iterator[list[Message]]:
    """``messages`` in order, cut into runs that one add or append call accepts."""
    batch: list[Message] = []
    size = 0
    for message in messages:
        added = _message_size(message)
        if batch and not _batch_fits(len(batch), size, added):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += added
    if batch:
        yield batch


def _one_message(value: object, name: str) -> Message:
    """A validated copy of one message, checked by the rules every backend applies."""
    if not isinstance(value, Message | Mapping):
        raise InvalidArgumentError(name, f"must be a message object, got {type(value).__name__}")
    return check_messages(value, name)[0]


def _message_list(values: object, name: str) -> list[Message]:
    """Validated copies of a list of messages of any length (the caller batches them)."""
    if not isinstance(values, list):
        raise InvalidArgumentError(name, f"must be a list of messages, got {type(values).__name__}")
    return [_one_message(value, f"{name}[{index}]") for index, value in enumerate(values)]


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


async def _write_session(
    sessions: SessionHistoryService, user_id: str, session_id: str, messages: list[Message]
) -> None:
    created = await sessions.create_session(user_id, session_id)
    for batch in _batches(messages):
        await sessions.append_message(created, batch)


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
    and sessions that the key starts with, else at the first ``:``. An entry (a memory
    session field, a session, a state round) that cannot be decoded or that breaks the
    services' rules is skipped whole, logged and listed in the report; everything else
    is copied. Storage failures of the targets raise.
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
                    check_id(user_id, "user_id")
                    check_id(session_id, "session_id")
                    messages = _message_list(json.loads(fields[raw_session]), "messages")
                except ValueError as exc:
                    report.skip(f"{key} field {session_id!r}: {exc}")
                    continue
                for batch in _batches(messages):
                    await memory.add_memory(user_id, batch, session_id=session_id)
                report.memories += len(messages)
    if sessions is not None:
        async for key in _scan(source, "session:*"):
            raw = await source.get(key)
            try:
                session = Session.model_validate_json(raw or b"")
                check_id(session.user_id, "user_id")
                check_id(session.id, "session_id")
                messages = _message_list(session.messages, "messages")
            except ValueError as exc:
                report.skip(f"{key}: {exc}")
                continue
            known.add(session.user_id)
            await _write_session(sessions, session.user_id, session.id, messages)
            report.sessions += 1
            report.messages += len(messages)
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


def _utc_text(moment: datetime) -> str:
    """ISO 8601 in UTC; a naive time is UTC, as the services read it."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


async def export_user(
    user_id: str,
    out: TextIO,
    *,
    memory: MemoryService | None = None,
    sessions: SessionHistoryService | None = None,
    states: StateService | None = None,
) -> int:
    """Write all of one user's data to ``out`` as JSON lines; returns the number of lines.

    The format is the module's: a header line, then every history session of
    ``sessions`` with its messages, every memory of ``memory`` with its session and
    creation time, oldest first, and every state round of ``states``, in every session
    the user has. Kinds whose service is not given are left out. Raises
    :class:`~agentmem.errors.UnsupportedOperationError`, before writing anything, when
    ``states`` cannot list a user's sessions (:attr:`Capability.LIST_SESSIONS`).
    """
    check_id(user_id, "user_id")
    if states is not None and Capability.LIST_SESSIONS not in states.capabilities:
        raise UnsupportedOperationError(
            f"export_user: {type(states).__name__} lacks the "
            f"{Capability.LIST_SESSIONS.value!r} capability, so it cannot find all of a "
            "user's state sessions; pass states=None to export without states"
        )
    lines = 0

    def write(record: dict[str, Any]) -> None:
        nonlocal lines
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        lines += 1

    write(
        {"type": "header", "format": EXPORT_FORMAT, "version": EXPORT_VERSION, "user_id": user_id}
    )
    if sessions is not None:
        for listed in await sessions.list_sessions(user_id):
            session = await sessions.get_session(user_id, listed.id)
            write(
                {
                    "type": "session",
                    "user_id": user_id,
                    "session_id": session.id,
                    "messages": [m.model_dump(mode="json") for m in session.messages],
                }
            )
    if memory is not None:
        page_num = 1
        while True:
            page = await memory.list_memory_records(
                user_id, {"page_num": page_num, "page_size": _PAGE_SIZE}
            )
            for record in page:
                write(
                    {
                        "type": "memory",
                        "user_id": user_id,
                        "session_id": record.session_id,
                        "created_at": _utc_text(record.created_at),
                        "message": record.message.model_dump(mode="json"),
                    }
                )
            if len(page) < _PAGE_SIZE:
                break
            page_num += 1
    if states is not None:
        for session_id in await states.list_session_ids(user_id):
            for round_id in await states.list_states(user_id, session_id):
                state = await states.export_state(user_id, session_id, round_id)
                if state is not None:
                    write(
                        {
                            "type": "state",
                            "user_id": user_id,
                            "session_id": session_id,
                            "round_id": round_id,
                            "state": state,
                        }
                    )
    return lines


@dataclass(frozen=True)
class _Header:
    version: int


@dataclass(frozen=True)
class _SessionLine:
    user_id: str
    session_id: str
    messages: list[Message]


@dataclass(frozen=True)
class _MemoryLine:
    user_id: str
    session_id: str
    created_at: float | None
    message: Message


@dataclass(frozen=True)
class _StateLine:
    user_id: str
    session_id: str
    round_id: int
    state: dict[str, Any]


_Line = _Header | _SessionLine | _MemoryLine | _StateLine


def _created_at(value: object) -> float | None:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return check_created_at(value)


def _parse(text: str) -> _Line:
    """The record of one line, checked by the rules the target services apply.

    Raises ValueError, TypeError or KeyError if it is not a valid record."""
    record = json.loads(text)
    if not isinstance(record, dict):
        raise TypeError(f"a line must be a JSON object, got {type(record).__name__}")
    kind = record["type"]
    if kind == "header":
        if record.get("format") != EXPORT_FORMAT:
            raise ValueError(f"not an agentmem export header (format {record.get('format')!r})")
        version = record["version"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"the format version must be a positive int, got {version!r}")
        return _Header(version)
    if kind not in ("session", "memory", "state"):
        raise ValueError(f"unknown record type {kind!r}")
    user_id = check_id(record["user_id"], "user_id")
    if kind == "memory":
        return _MemoryLine(
            user_id,
            session_or_default(record.get("session_id")),
            _created_at(record.get("created_at")),
            _one_message(record["message"], "message"),
        )
    session_id = check_id(record["session_id"], "session_id")
    if kind == "session":
        return _SessionLine(user_id, session_id, _message_list(record["messages"], "messages"))
    round_id = record["round_id"]
    check_round_id(round_id, optional=False)
    return _StateLine(user_id, session_id, round_id, check_state(record["state"]))


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc)


class _PendingMemories:
    """Memories read but not added yet: consecutive ones of one user, session and
    creation time, as many as one ``add_memory`` call takes."""

    def __init__(self, memory: MemoryService, report: MigrationReport) -> None:
        self._memory = memory
        self._report = report
        self._owner: tuple[str, str, float | None] | None = None
        self._messages: list[Message] = []
        self._size = 0

    async def add(self, line: _MemoryLine) -> None:
        owner = (line.user_id, line.session_id, line.created_at)
        added = _message_size(line.message)
        if owner != self._owner or not _batch_fits(len(self._messages), self._size, added):
            await self.flush()
            self._owner = owner
        self._messages.append(line.message)
        self._size += added

    async def flush(self) -> None:
        if self._owner is None or not self._messages:
            return
        user_id, session_id, created_at = self._owner
        await self._memory.add_memory(user_id, self._messages, session_id, created_at=created_at)
        self._report.memories += len(self._messages)
        self._messages, self._size = [], 0


def _check_header(header: _Header, number: int, memory: MemoryService | None) -> None:
    if header.version > EXPORT_VERSION:
        raise UnsupportedOperationError(
            f"import_user: line {number} starts an export of format version "
            f"{header.version}, newer than this agentmem reads ({EXPORT_VERSION}); "
            "upgrade agentmem"
        )
    if (
        header.version >= 2
        and memory is not None
        and Capability.CREATION_TIME not in memory.capabilities
    ):
        raise UnsupportedOperationError(
            f"import_user: {type(memory).__name__} lacks the "
            f"{Capability.CREATION_TIME.value!r} capability, so the imported memories would "
            "lose their creation times; pass memory=None to import without them"
        )


async def import_user(
    lines: Iterable[str],
    *,
    memory: MemoryService | None = None,
    sessions: SessionHistoryService | None = None,
    states: StateService | None = None,
) -> MigrationReport:
    """Write the JSON lines of :func:`export_user` (any format version) through the
    given services; returns what was written and skipped.

    Memories are added in their exported order with their creation times, consecutive
    ones of one session and time in one call; history sessions are created, emptied if
    they exist, and their messages appended, in calls within the batch limits. Records
    of a kind whose service is not given, and blank lines, are passed over. A line that
    is not a valid record, or that the target services would refuse, is skipped whole
    and listed in the report. Storage failures raise.

    Raises :class:`~agentmem.errors.UnsupportedOperationError` at a header line, before
    anything after it is written, when the export is newer than this version reads, or
    when it keeps creation times and ``memory`` cannot store them
    (:attr:`Capability.CREATION_TIME`).
    """
    report = MigrationReport()
    pending = _PendingMemories(memory, report) if memory is not None else None
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            line = _parse(text)
        except (ValueError, TypeError, KeyError) as exc:
            report.skip(f"line {number}: {_reason(exc)}")
            continue
        if isinstance(line, _Header):
            if pending is not None:
                await pending.flush()
            _check_header(line, number, memory)
        elif isinstance(line, _MemoryLine) and pending is not None:
            await pending.add(line)
        elif isinstance(line, _SessionLine) and sessions is not None:
            await _write_session(sessions, line.user_id, line.session_id, line.messages)
            report.sessions += 1
            report.messages += len(line.messages)
        elif isinstance(line, _StateLine) and states is not None:
            await states.save_state(line.user_id, line.state, line.session_id, line.round_id)
            report.states += 1
    if pending is not None:
        await pending.flush()
    return report


def redis_command_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``agentmem redis``."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    source = actions.add_parser(
        "import-agentscope", help="import AgentScope Runtime 1.0's Redis data into agentmem"
    )
    source.add_argument("--from", dest="source", required=True, help="AgentScope's Redis URL")
    export = actions.add_parser(
        "export", help="write all of one user's sessions, memories and states as JSON lines"
    )
    export.add_argument("--user", required=True, help="the user id to export")
    export.add_argument("--file", help="the JSON lines file to write (default: stdout)")
    imported = actions.add_parser("import", help="read JSON lines written by export")
    imported.add_argument("--file", help="the JSON lines file to read (default: stdin)")
    for action in actions.choices.values():
        action.add_argument(
            "--url",
            required=True,
            help="agentmem's Redis URL (redis+cluster://... for a cluster)",
        )
        action.add_argument("--key-prefix", default="agentmem", help="agentmem's key prefix")
    # Only writers take an expiry: with one, reads refresh it, so an export would put
    # an expiry on the data it reads.
    for action in (source, imported):
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

    options: dict[str, Any] = {
        "key_prefix": args.key_prefix,
        "ttl_seconds": getattr(args, "ttl_seconds", None),
    }
    async with (
        RedisMemoryService(args.url, **options) as memory,
        RedisSessionHistoryService(args.url, **options) as sessions,
        RedisStateService(args.url, **options) as states,
    ):
        services: dict[str, Any] = {"memory": memory, "sessions": sessions, "states": states}
        if args.action == "export":
            lines = await export_user(args.user, stream, **services)
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
