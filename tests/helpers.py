"""Small builders shared by the tests."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

from agentmem import Message, TextContent
from agentmem.search import analyze


def text_message(text: str, role: str = "user", **fields: object) -> Message:
    return Message(role=role, content=[TextContent(text=text)], **fields)


def texts(messages: list[Message]) -> list[str]:
    return [message.get_text_content() or "" for message in messages]


class AxisEmbedder:
    """A deterministic test embedder: the index terms of one concept share its axis
    (``concepts`` maps terms to axes 0, 1...), every other term hashes to one of the axes
    left. Counts its calls and the texts it saw, to check what is embedded when.
    """

    def __init__(self, concepts: Mapping[str, int], dimensions: int) -> None:
        self.concepts = concepts
        self.dimensions = dimensions
        self.calls: list[list[str]] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        reserved = len(set(self.concepts.values()))
        vectors = []
        for text in texts:
            vector = [0.0] * self.dimensions
            for term in analyze(text):
                hashed = reserved + zlib.crc32(term.encode()) % (self.dimensions - reserved)
                vector[self.concepts.get(term, hashed)] += 1.0
            vectors.append(vector)
        return vectors
