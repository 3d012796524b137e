"""One object a UI holds: the index and models loaded once, `search` and `ask` on top.

It notices when `cite index` has made a new index version and switches to it on the next
question, so a running UI never needs a restart (and keeps answering from the old version
while a new one is being written).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.config import Settings, load_settings
from core.embedder import Embedder, default_embedder
from core.store import StoredIndex, current_version
from core.types import Answer, Hit
from retriever.answer import extractive_answer
from retriever.followup import standalone_question
from retriever.search import DenseSearcher, HybridSearcher, LexicalSearcher, check_question, load_index


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
        self._lock = threading.Lock()
        self._index: StoredIndex | None = None
        self._searcher: HybridSearcher | None = None
        self._load()

    @property
    def index(self) -> StoredIndex:
        self.refresh()
        assert self._index is not None
        return self._index

    def refresh(self) -> None:
        """Switches to the newest complete index version, if there is a newer one."""
        version = current_version(self.root)
        if self._index is None or (version is not None and version != self._index.path):
            self._load()

    def _load(self) -> None:
        with self._lock:
            index = load_index(self.root, self.embedder)
            self._searcher = HybridSearcher(
                DenseSearcher(index, self.embedder), LexicalSearcher(index), self.settings.search
            )
            self._index = index

    def search(self, question: str, k: int = 10) -> list[Hit]:
        question = check_question(question)
        return self.search_with_vector(question, self.embedder.encode([question]), k)

    def search_with_vector(self, question: str, vector: Any, k: int = 10) -> list[Hit]:
        """`search` with the question already embedded (eval and bench embed them in one batch)."""
        self.refresh()
        assert self._searcher is not None
        return self._searcher.search_with_vector(question, vector, k)

    def ask(self, question: str, k: int = 10, history: Sequence[str] = ()) -> Answer:
        """Answers `question`; `history` holds the user's earlier questions, oldest first,
        so a follow-up ("And who opposed it?") is made standalone before retrieval."""
        question = asked = check_question(question)
        if self.chat_model is not None and history:
            from retriever.generate import rewrite_question  # LangChain loads only when a model is used

            question = rewrite_question(self.chat_model, question, history)
        else:
            question = standalone_question(question, history)
        self.refresh()
        searcher, index = self._searcher, self._index
        assert searcher is not None and index is not None
        vectors = self.embedder.encode([question] if asked == question else [question, asked])
        vector = vectors[:1]
        hits = searcher.search_with_vector(question, vector, k)
        follow_up = (asked, vectors[1:]) if asked != question else None
        extractive = extractive_answer(question, vector, hits, index, self.settings.answer, follow_up)
        # Abstention rests on retrieval evidence, with or without a model: a model is never
        # asked to answer from passages that do not hold the answer.
        if self.chat_model is None or extractive.abstained:
            return extractive
        from retriever.generate import generative_answer, hit_document

        documents = [hit_document(hit, rank) for rank, hit in enumerate(hits[: self.settings.answer.passages + 1], 1)]
        texts = {d.metadata["doc"]: index.documents[d.metadata["doc"]].text for d in documents}
        return generative_answer(question, documents, texts, self.chat_model, self.embedder, extractive.confidence)
