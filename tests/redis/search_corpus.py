"""A chat-like corpus and the searches that compare a Redis backend with the in-memory one."""

from __future__ import annotations

import random
from typing import Any

from agentmem import MemoryService, Message
from tests.helpers import text_message

WORDS = [
    "tea",
    "coffee",
    "painting",
    "sunrise",
    "lake",
    "mountain",
    "dog",
    "cat",
    "garden",
    "piano",
    "guitar",
    "school",
    "teacher",
    "doctor",
    "nurse",
    "hospital",
    "train",
    "station",
    "ticket",
    "holiday",
    "beach",
    "museum",
    "novel",
    "poem",
    "recipe",
    "cake",
    "bread",
    "soup",
    "market",
    "bicycle",
    "river",
    "bridge",
    "castle",
    "forest",
    "winter",
    "summer",
    "autumn",
    "spring",
    "birthday",
    "wedding",
    "concert",
    "football",
    "tennis",
    "marathon",
    "sister",
    "brother",
    "mother",
    "father",
    "grandmother",
    "friend",
    "neighbour",
    "colleague",
    "office",
    "meeting",
    "project",
    "deadline",
    "camera",
    "photo",
    "album",
    "festival",
    "lantern",
    "candle",
    "blanket",
    "sweater",
]


def chat(seed: int, batches_count: int = 40) -> list[tuple[str, list[Message]]]:
    """Sessions of a chat: batches of messages with skewed word frequencies."""
    rng = random.Random(seed)
    batches = []
    for number in range(batches_count):
        session = f"session {number % 6}"
        messages = []
        for _ in range(rng.randint(1, 6)):
            length = rng.randint(3, 14)
            words = [WORDS[min(int(rng.expovariate(0.08)), len(WORDS) - 1)] for _ in range(length)]
            text = " ".join(words)
            metadata = None
            if rng.random() < 0.5:
                speaker = rng.choice(["ann", "bob"])
                metadata = {"speaker": speaker}
                # A speaker's label: its speaker terms meet queries naming the speaker.
                text = f"{speaker.title()}: {text}"
            messages.append(text_message(text, metadata=metadata))
        batches.append((session, messages))
    return batches


QUERIES = [
    "tea",
    "painting the sunrise by the lake",
    "What did Ann paint by the lake?",
    "bob tea garden",
    "my sister's wedding concert",
    "dog cat garden",
    "train ticket for the holiday",
    "piano guitar teacher school",
    "what is my",
    "unknownword",
    "cake bread soup recipe market",
    "blanket sweater winter",
]

FILTERS: list[dict[str, Any]] = [
    {},
    {"top_k": 3},
    {"session_id": "session 2"},
    {"metadata": {"speaker": "ann"}},
    {"min_score": 2.0},
]


async def fill(service: MemoryService, corpus: list[tuple[str, list[Message]]]) -> None:
    for session, messages in corpus:
        await service.add_memory("u1", messages, session_id=session)
        await service.add_memory("other", messages[:1], session_id=session)


async def results(service: MemoryService) -> list[list[tuple[str, float, str]]]:
    found = []
    for query in QUERIES:
        for filters in FILTERS:
            hits = await service.search_memory_hits("u1", query, filters)
            found.append([(hit.message.id, hit.score, hit.session_id) for hit in hits])
    return found


def other_words(corpus: list[tuple[str, list[Message]]]) -> list[tuple[str, list[Message]]]:
    """The same sessions and message counts, each word replaced by another."""
    shifted = {word: WORDS[(index + 7) % len(WORDS)] for index, word in enumerate(WORDS)}
    return [
        (
            session,
            [
                text_message(
                    " ".join(
                        shifted.get(word, word) for word in (m.get_text_content() or "").split()
                    )
                )
                for m in messages
            ],
        )
        for session, messages in corpus
    ]
