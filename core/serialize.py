"""The JSON contracts other tools rely on: one function per shape, nothing else decides them."""

from __future__ import annotations

from typing import Any

from cite.core.types import Answer, Hit


def hit_json(hit: Hit, rank: int) -> dict[str, Any]:
    """`{"rank", "doc", "start", "end", "page", "section", "text", "score", "scores"}` (page and
    section null where the format has none), plus `"sentence": {"start",
    "end"}` (the passage's sentence closest to the question) when known; rank counts from 1."""
    passage = hit.passage
    extra = {"sentence": {"start": hit.sentence[0], "end": hit.sentence[1]}} if hit.sentence else {}
    return {
        "rank": rank,
        "doc": passage.doc,
        "start": passage.start,
        "end": passage.end,
        "page": passage.page,
        "section": passage.section or None,
        "text": passage.text,
        "score": round(hit.score, 6),
        "scores": {name: round(value, 6) for name, value in hit.scores.items()},
        **extra,
    }


def hits_json(hits: list[Hit] | tuple[Hit, ...]) -> list[dict[str, Any]]:
    return [hit_json(hit, rank) for rank, hit in enumerate(hits, start=1)]


def answer_json(answer: Answer) -> dict[str, Any]:
    """`{"answer", "abstained", "confidence", "citations", "claims", "hits"}`; a citation's
    `page` is the page its quote starts on and `last_page` the one it ends on (null both where
    the format has no pages)."""
    return {
        "answer": answer.text,
        "abstained": answer.abstained,
        "confidence": round(answer.confidence, 4),
        "citations": [
            {
                "n": c.n,
                "doc": c.doc,
                "start": c.start,
                "end": c.end,
                "page": c.page,
                "last_page": c.end_page,
                "section": c.section or None,
                "quote": c.quote,
            }
            for c in answer.citations
        ],
        "claims": [
            {"text": c.text, "citations": list(c.citations), "supported": c.supported, "support": round(c.support, 4)}
            for c in answer.claims
        ],
        "hits": hits_json(answer.hits),
    }
