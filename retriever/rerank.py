"""Late interaction: the top fused hits re-ordered by how well each of the question's words
finds its match among a passage's token vectors (MaxSim, as ColBERT scores), from the same
MiniLM run that makes the passage's vector.

Mean pooling blurs a passage's 250 word pieces into one vector, and BM25 needs the very word:
"stop history being saved" matches "prevent such commands from being added to the history"
word by word, where neither channel sees it. The scores are not stored: the top hits are run
through the model again at question time (about ten passages).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from cite.core.config import SearchSettings
from cite.core.embedder import Embedder, TokenEmbedder
from cite.core.lexical import QUESTION_WORDS, stopwords
from cite.core.types import Hit

_CONTENT = re.compile(r"[0-9a-z]")
# Question/passage match scores kept (a few bytes each): eval and tuning re-rank the same
# candidates under many settings, and a server is asked the same questions again.
MEMO_SIZE = 50_000


def content_rows(pieces: Sequence[str], vectors: np.ndarray) -> np.ndarray:
    """The question's token vectors that carry its subject: not stopwords, question words or
    punctuation ("How do I stop history being saved?" keeps stop, history, saved). All of
    them when none is left."""
    drop = stopwords() | QUESTION_WORDS
    keep = [i for i, piece in enumerate(pieces) if _CONTENT.search(piece) and piece not in drop]
    return vectors[keep] if keep else vectors


def token_match(question: np.ndarray, passage: np.ndarray) -> float:
    """Each question token's best cosine among the passage's tokens, averaged."""
    if not len(question) or not len(passage):
        return 0.0
    return float((question @ passage.T).max(axis=1).mean())


def _scaled(values: np.ndarray) -> np.ndarray:
    spread = values.max() - values.min()
    return (values - values.min()) / spread if spread > 0 else np.zeros_like(values)


class TokenReranker:
    """Re-orders a searcher's top `settings.token_depth` hits by
    `(1 - token_weight) * fused + token_weight * token match`, each min-max scaled over them.
    A hit's score stays inside the range the fused scores spanned, so hits below the depth keep
    their place."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._memo: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def rerank(self, query: str, hits: list[Hit], settings: SearchSettings) -> list[Hit]:
        depth = min(settings.token_depth, len(hits))
        if (
            settings.token_weight <= 0
            or depth < 2
            or not isinstance(self.embedder, TokenEmbedder)
            or len(query.split()) > settings.sentence_query_words  # a paragraph, an argument: passage level only
        ):
            return hits
        top = hits[:depth]
        matches = np.array(self.matches(query, top))
        fused = np.array([hit.score for hit in top])
        combined = (1 - settings.token_weight) * _scaled(fused) + settings.token_weight * _scaled(matches)
        low, high = fused.min(), fused.max()
        rescored = [
            replace(
                hit, score=float(low + c * (high - low)), scores={**hit.scores, "fused": hit.score, "tokens": float(m)}
            )
            for hit, c, m in zip(top, combined, matches, strict=True)
        ]
        order = sorted(range(depth), key=lambda i: -combined[i])  # stable: ties keep the fused order
        return [rescored[i] for i in order] + hits[depth:]

    def matches(self, query: str, hits: Sequence[Hit]) -> list[float]:
        """The token match of the query with each hit's passage."""
        with self._lock:
            known = {hit.passage.id: self._memo.get((query, hit.passage.id)) for hit in hits}
        missing = [hit for hit in hits if known[hit.passage.id] is None]
        if missing:
            pieces, vectors = self.embedder.token_vectors([query])[0]
            question = content_rows(pieces, vectors)
            passages = self.embedder.token_vectors([hit.passage.text for hit in missing])
            with self._lock:
                for hit, (_, rows) in zip(missing, passages, strict=True):
                    known[hit.passage.id] = self._memo[query, hit.passage.id] = token_match(question, rows)
                while len(self._memo) > MEMO_SIZE:
                    self._memo.popitem(last=False)
        return [known[hit.passage.id] for hit in hits]
