"""A process writing to one SQLite file, for the tests of several processes and of crashes.

``python -m tests.sqlite.worker writers PATH TAG COUNT``: opens the three services on
PATH, prints ``ready``, waits for a line on standard input, then runs COUNT concurrent
writers, each adding one memory, appending one message and saving one state (automatic
round) for user ``u``, session ``s``; prints the rounds it was given as a JSON list.

``python -m tests.sqlite.worker crash PATH``: writes forever, a batch after another, and
prints the number of each batch once all three of its writes are acknowledged; the
test kills it with SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import sys

from agentmem import (
    Message,
    Session,
    SQLiteMemoryService,
    SQLiteSessionHistoryService,
    SQLiteStateService,
    TextContent,
)

#: Memories per batch of the crash worker: a batch takes long enough to be killed in.
BATCH = 20


def message(text: str) -> Message:
    return Message(role="user", content=[TextContent(text=text)])


async def writers(path: str, tag: str, count: int) -> None:
    memory = SQLiteMemoryService(path)
    sessions = SQLiteSessionHistoryService(path)
    states = SQLiteStateService(path)
    async with memory, sessions, states:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)

        async def write(number: int) -> int:
            text = f"{tag} note {number}"
            await memory.add_memory("u", [message(text)], "s")
            await sessions.append_message(Session(id="s", user_id="u"), message(text))
            return await states.save_state("u", {"by": tag, "number": number}, "s")

        rounds = await asyncio.gather(*(write(number) for number in range(count)))
    print(json.dumps(rounds), flush=True)


async def crash(path: str) -> None:
    memory = SQLiteMemoryService(path)
    sessions = SQLiteSessionHistoryService(path)
    states = SQLiteStateService(path)
    async with memory, sessions, states:
        batch = 0
        while True:
            texts = [f"batch {batch} note {number}" for number in range(BATCH)]
            await memory.add_memory("u", [message(text) for text in texts], f"s{batch % 7}")
            await sessions.append_message(
                Session(id="s", user_id="u"), [message(text) for text in texts]
            )
            await states.save_state("u", {"batch": batch}, "s", round_id=batch + 1)
            print(batch, flush=True)
            batch += 1


if __name__ == "__main__":
    command, path, *rest = sys.argv[1:]
    if command == "writers":
        asyncio.run(writers(path, rest[0], int(rest[1])))
    else:
        asyncio.run(crash(path))
