"""mem0's own open-source engine, configured to run offline for the tests.

``AsyncMemory`` with a local in-memory Qdrant and a deterministic local embedder.
(Qdrant's local mode on disk keeps one SQLite connection that is not safe across
threads, and mem0 deletes memories from several threads at once: under load that failed
with "cannot start a transaction within a transaction".) Its OpenAI LLM and embedder
settings only satisfy mem0's constructor: with ``infer=False`` the LLM is never called,
and the embedder is replaced before use, so no request leaves the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mem0 import AsyncMemory
from mem0.configs.base import MemoryConfig
from mem0.configs.embeddings.base import BaseEmbedderConfig
from mem0.embeddings.base import EmbeddingBase
from qdrant_client import QdrantClient

from tests.hosted.fakes import HashingEmbedder


class HashingMem0Embedding(EmbeddingBase):
    """mem0's embedding interface over :class:`HashingEmbedder`."""

    def __init__(self, dimension: int) -> None:
        super().__init__(BaseEmbedderConfig(embedding_dims=dimension))
        self._embedder = HashingEmbedder(dimension)

    def embed(self, text: Any, memory_action: Any = None) -> list[float]:
        return self._embedder.embed_one(str(text))


def local_async_memory(directory: Path, dimension: int = 64) -> AsyncMemory:
    """A fresh ``AsyncMemory`` whose data lives in ``directory``."""
    unused = {"api_key": "unused-offline", "openai_base_url": "http://127.0.0.1:9/v1"}
    config = MemoryConfig(
        vector_store={
            "provider": "qdrant",
            "config": {
                "collection_name": "agentmem",
                "embedding_model_dims": dimension,
                "client": QdrantClient(location=":memory:"),
                # Unused beside a client, but mem0's settings want one of path or host.
                "path": str(directory / "qdrant"),
                "on_disk": False,
            },
        },
        embedder={"provider": "openai", "config": {**unused, "embedding_dims": dimension}},
        llm={"provider": "openai", "config": unused},
        history_db_path=str(directory / "history.db"),
    )
    memory = AsyncMemory(config)
    memory.embedding_model = HashingMem0Embedding(dimension)
    return memory


def close_async_memory(memory: AsyncMemory) -> None:
    """Release the engine's history database and local Qdrant."""
    memory.close()
    memory.vector_store.client.close()
