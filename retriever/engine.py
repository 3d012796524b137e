"""One object a UI holds: the index and models loaded once, `search` and `ask` on top.

It notices when `cite index` has made a new index version and switches to it on the next
question, so a running UI never needs a restart (and keeps answering from the old version
while a new one is being written).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cite.core.config import DEFAULT_K, Settings, load_settings
from cite.core.embedder import Embedder, default_embedder
from cite.core.store import StoredIndex, current_version
from cite.core.types import Answer, Hit
from cite.retriever.answer import extractive_answer
from cite.retriever.followup import standalone_question
from cite.retriever.search import (
    DenseSearcher,
    HybridSearcher,
    LexicalSearcher,
    Searcher,
    check_query,
    check_question,
    load_index,
)


@dataclass(frozen=True)
class Snapshot:
    """One index version and everything built over it. A request reads the engine's snapshot
    once and uses only that, so an index switched in mid-request never mixes with the old."""

    index: StoredIndex
    searcher: Searcher
    settings: Settings

    @property
    def version(self) -> str:
        return self.index.path.name


class Engine:
    def __init__(
        self,
        root: Path,
        embedder: Embedder | None = None,
        settings: Settings | None = None,
        chat_model: Any | None = None,
    ) -> None:
        """`settings`: None reads the index folder's settings.toml (see `cite eval --tune`),
        or the defaults. `chat_model`: a LangChain chat model for generative answers (None:
        extractive)."""
        self.root = Path(root)
        self.embedder = embedder or default_embedder()
        self.settings = settings or load_settings(self.root)
        self.chat_model = chat_model
        self._lock = threading.Lock()  # one loader at a time; readers never wait for it
        self._snapshot = self._load()

    @property
    def index(self) -> StoredIndex:
        """The index of the current snapshot (no disk access; see `snapshot` for a refresh)."""
        return self._snapshot.index

    def snapshot(self) -> Snapshot:
        """The newest complete index version, loaded once and then shared by every request.

        `cite index` writing a new version is noticed here, so a running UI never needs a
        restart, and keeps answering from the old version while the new one is written."""
        current = self._snapshot
        version = current_version(self.root)
        if version is None or version == current.index.path:
            return current
        with self._lock:
            if self._snapshot.index.path != current_version(self.root):  # not loaded meanwhile
                self._snapshot = self._load()  # one assignment: readers see the old or the new
            return self._snapshot

    def _load(self) -> Snapshot:
        index = load_index(self.root, self.embedder)
        searcher = HybridSearcher(DenseSearcher(index, self.embedder), LexicalSearcher(index), self.settings.search)
        return Snapshot(index, searcher, self.settings)

    def search(self, question: str, k: int = DEFAULT_K, snapshot: Snapshot | None = None) -> list[Hit]:
        """The top k passages for a question, a claim or a pasted passage (up to MAX_QUERY_CHARS);
        `snapshot` pins the version (the caller then reads the same one)."""
        question = check_query(question)
        return self.search_with_vector(question, self.embedder.encode([question]), k, snapshot)

    def search_with_vector(
        self, question: str, vector: Any, k: int = DEFAULT_K, snapshot: Snapshot | None = None
    ) -> list[Hit]:
        """`search` with the question already embedded (eval and bench embed them in one batch)."""
        return (snapshot or self.snapshot()).searcher.search_with_vector(question, vector, k)

    def ask(
        self, question: str, k: int = DEFAULT_K, history: Sequence[str] = (), snapshot: Snapshot | None = None
    ) -> Answer:
        """Answers `question`; `history` holds the user's earlier questions, oldest first,
        so a follow-up ("And who opposed it?") is made standalone before retrieval."""
        question = asked = check_question(question)
        if self.chat_model is not None and history:
            from cite.retriever.generate import rewrite_question  # LangChain loads only when a model is used

            question = rewrite_question(self.chat_model, question, history)
        else:
            question = standalone_question(question, history)
        snapshot = snapshot or self.snapshot()
        index, settings = snapshot.index, snapshot.settings
        vectors = self.embedder.encode([question] if asked == question else [question, asked])
        vector = vectors[:1]
        hits = snapshot.searcher.search_with_vector(question, vector, k)
        follow_up = (asked, vectors[1:]) if asked != question else None
        extractive = extractive_answer(question, vector, hits, index, settings.answer, follow_up)
        answer = replace(extractive, version=snapshot.version)
        # Abstention rests on retrieval evidence, with or without a model: a model is never
        # asked to answer from passages that do not hold the answer.
        if self.chat_model is None or extractive.abstained:
            return answer
        from cite.retriever.generate import generative_answer, hit_document

        documents = [hit_document(hit, rank) for rank, hit in enumerate(hits[: settings.answer.passages + 1], 1)]
        generated = generative_answer(
            question, documents, index.documents, self.chat_model, self.embedder, extractive.confidence
        )
        if not generated.abstained and not any(claim.supported for claim in generated.claims):
            return answer  # a reply none of whose sentences its citations support: quote the sources instead
        return replace(generated, version=snapshot.version)
