"""Published nDCG@10 / Recall@100 on the BEIR test splits, to print beside our own runs.

From ../shared/bench/README.md, which cites its sources: Pyserini `pyserini/2cr/beir.yaml`,
the MTEB results repository and BEIR's reranking README.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    system: str
    ndcg10: float
    recall100: float | None  # None where the source gives none


PUBLISHED: dict[str, list[Published]] = {
    "scifact-test": [
        Published("BM25, Pyserini flat", 0.6789, 0.9253),
        Published("BM25, Pyserini multifield", 0.6647, 0.9076),
        Published("BM25, bm25s (k1=1.5, b=0.75)", 0.687, 0.913),
        Published("all-MiniLM-L6-v2 (dense)", 0.6451, 0.925),
        Published("all-mpnet-base-v2 (dense)", 0.6557, 0.9417),
        Published("bge-small-en-v1.5 (dense)", 0.7127, 0.945),
        Published("BM25 top-100 + cross-encoder ms-marco-MiniLM-L-6-v2", 0.682, None),
    ],
    "arguana-test": [
        Published("BM25, Pyserini flat", 0.3970, 0.9324),
        Published("BM25, Pyserini multifield", 0.4142, 0.9431),
        Published("BM25, bm25s (k1=1.5, b=0.75)", 0.493, 0.965),
        Published("all-MiniLM-L6-v2 (dense)", 0.5017, 0.9772),
        Published("all-mpnet-base-v2 (dense)", 0.4652, 0.9865),
        Published("bge-small-en-v1.5 (dense)", 0.6035, 0.9879),
        Published("BM25 top-100 + cross-encoder ms-marco-MiniLM-L-6-v2", 0.415, None),
    ],
}


def published_table(name: str) -> str:
    """Markdown rows of the published numbers for a report name ("scifact-test"), or ""."""
    rows = PUBLISHED.get(name.lower())
    if not rows:
        return ""
    lines = ["| published system | nDCG@10 | Recall@100 |", "|---|---|---|"]
    for row in rows:
        recall = f"{row.recall100:.4f}" if row.recall100 is not None else "n/a"
        lines.append(f"| {row.system} | {row.ndcg10:.4f} | {recall} |")
    return "\n".join(lines)
