"""The limits every backend enforces, checked by the service bases before anything is stored.

A call that breaks one raises :class:`agentmem.errors.InvalidArgumentError` naming the
field and the limit, on every backend, and stores nothing. Sizes are bytes of UTF-8 JSON
as agentmem serializes it (no spaces).
"""

from __future__ import annotations

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_MESSAGES",
    "MAX_ID_LENGTH",
    "MAX_INT_DIGITS",
    "MAX_JSON_DEPTH",
    "MAX_LIST_OFFSET",
    "MAX_MESSAGE_BYTES",
    "MAX_PAGE_SIZE",
    "MAX_ROUND_ID",
    "MAX_STATE_BYTES",
    "MAX_TOP_K",
]

#: Characters in a user, session or message id.
MAX_ID_LENGTH = 1024
#: Decimal digits of an integer in a message or a state (Python's own limit for
#: printing an int, so every such integer serializes).
MAX_INT_DIGITS = 4300
#: Levels of nesting of a message or a state, the message or state object itself being
#: level 1: ``{"metadata": {"a": 1}}`` nests 2 deep.
MAX_JSON_DEPTH = 32
#: Size of one message.
MAX_MESSAGE_BYTES = 1024 * 1024
#: Messages in one ``add_memory`` or ``append_message`` call.
MAX_BATCH_MESSAGES = 1000
#: Size of the messages of one ``add_memory`` or ``append_message`` call together.
MAX_BATCH_BYTES = 8 * 1024 * 1024
#: Size of one saved state.
MAX_STATE_BYTES = 4 * 1024 * 1024
#: The largest round id: 2**53 - 1, the largest integer every JSON reader and Redis's
#: Lua numbers hold exactly.
MAX_ROUND_ID = 2**53 - 1
#: ``page_size`` of ``list_memory``.
MAX_PAGE_SIZE = 10_000
#: ``(page_num - 1) * page_size`` of ``list_memory``.
MAX_LIST_OFFSET = 2**30
#: ``top_k`` of ``search_memory``.
MAX_TOP_K = 10_000
