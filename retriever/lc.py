"""cite's hybrid retriever as a LangChain `BaseRetriever`, to drop into any LCEL chain.

from cite.retriever.lc import CiteRetriever
retriever = CiteRetriever.from_index(".cite/index", k=5)
docs = retriever.invoke("Who proposed a CSO joint command?")
docs[0].metadata  # {"doc", "start", "end", "rank", "score", "scores": {...}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cite.core.config import DEFAULT_K
from cite.retriever.engine import Engine
from cite.retriever.generate import hit_document
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict


class CiteRetriever(BaseRetriever):
    """Ranks passages with dense + BM25 + best-sentence fusion; metadata locates each one."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    engine: Engine
    k: int = DEFAULT_K

    @classmethod
    def from_index(cls, index: str | Path, k: int = DEFAULT_K, **kwargs: Any) -> CiteRetriever:
        return cls(engine=Engine(Path(index)), k=k, **kwargs)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[LCDocument]:
        return [hit_document(hit, rank) for rank, hit in enumerate(self.engine.search(query, self.k), start=1)]
