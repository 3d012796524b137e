"""How cost grows with the collection: FAISS index kinds at 10k, 100k and 1M vectors, and
cite's whole search path and incremental add at 100k passages.

    python -m bench.scale [--sizes 10000 100000 1000000]

Vectors: real MiniLM sentence vectors from the eval indexes (.cite/eval/beir-*) as far as
they go, random unit vectors beyond (marked "synthetic"); timing does not depend on the
values, recall against exact search does a little. The 100k-passage index uses real text
(SciFact and ArguAna passages, repeated) with synthetic vectors, so building it embeds
nothing. Writes bench/results/scale.json and bench/results/scale.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.run import time_queries

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DIM = 384


def real_vectors(limit: int) -> np.ndarray:
    """Sentence and passage vectors of the eval indexes built so far, up to `limit` rows."""
    from core.store import current_version, read_manifest, segment_folder

    chunks = []
    for root in sorted((ROOT / ".cite" / "eval").glob("beir-*")):
        if current_version(root) is None:
            continue
        for segment in read_manifest(root).segments:
            for name in ("vectors.npy", "sentence_vectors.npy"):
                chunks.append(np.load(segment_folder(root, segment.name) / name, mmap_mode="r"))
    if not chunks:
        return np.zeros((0, DIM), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(chunks)[:limit], dtype=np.float32)


def unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def vectors_of_size(count: int, real: np.ndarray) -> tuple[np.ndarray, str]:
    if len(real) >= count:
        return real[:count], "real"
    return np.vstack([real, unit_vectors(count - len(real), seed=count)]), f"{len(real)} real + synthetic"


def faiss_curve(sizes: list[int], queries: int = 200) -> list[dict[str, Any]]:
    """Build time, memory, latency and recall of the index kinds cite writes, as it sets them up."""
    import faiss

    from core.store import FLAT_KIND, HNSW_KIND, HNSW_M, new_dense_index, ready_to_search

    real = real_vectors(max(sizes) + queries)
    rows = []
    for size in sizes:
        # Real vectors probe: random probes in a random cloud have no meaningful neighbours
        # (a first run measured HNSW recall .09 at 1M that way).
        probe = real[:queries] if len(real) >= queries else unit_vectors(queries, seed=1)
        base, source = vectors_of_size(size, real[len(probe) :])
        exact = faiss.IndexFlatIP(DIM)
        exact.add(base)
        truth = exact.search(probe, 10)[1]
        for kind, label in ((FLAT_KIND, "flat"), (HNSW_KIND, f"hnsw{HNSW_M}")):
            started = time.perf_counter()
            index = new_dense_index(kind, DIM)
            index.add(base)
            build = time.perf_counter() - started
            ready_to_search(index)
            latencies, found = [], []
            for row in range(len(probe)):
                started = time.perf_counter()
                _, ids = index.search(probe[row : row + 1], 10)
                latencies.append(time.perf_counter() - started)
                found.append(len(set(ids[0]) & set(truth[row])) / 10)
            rows.append(
                {
                    "vectors": size,
                    "source": source,
                    "index": label,
                    "build_s": round(build, 2),
                    "memory_mb": round(len(faiss.serialize_index(index)) / 2**20, 1),
                    "query_p50_ms": round(1000 * statistics.median(latencies), 2),
                    "recall@10_vs_exact": round(float(np.mean(found)), 4),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            del index
    return rows


def texts(count: int) -> list[tuple[str, str]]:
    """(title, text) records from SciFact and ArguAna, repeated with a number to reach `count`."""
    records = []
    for name in ("scifact", "arguana"):
        path = ROOT.parent / "shared" / "bench" / name / "corpus.jsonl"
        with path.open(encoding="utf-8") as handle:
            records += [(r["title"], r["text"][:900]) for r in map(json.loads, handle)]
    return [(f"{records[i % len(records)][0]} {i // len(records)}", records[i % len(records)][1]) for i in range(count)]


def search_at_scale(passages: int, queries: int = 100) -> dict[str, Any]:
    """Builds a `passages`-passage index (real text, synthetic vectors), then times
    cite's hybrid search and ask, and adding one document."""
    from core.config import SplitSettings
    from core.types import Document
    from indexer import build
    from retriever.engine import Engine

    class SyntheticEmbedder:
        name, fingerprint, dim = "synthetic", "synthetic-v1", DIM

        def __init__(self) -> None:
            self.texts = 0

        def encode(self, batch):
            self.texts += len(batch)
            return unit_vectors(len(batch), seed=len(batch) + self.texts)

    embedder = SyntheticEmbedder()
    documents = [Document(f"doc{i}", f"{title}. {text}") for i, (title, text) in enumerate(texts(passages))]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "index"
        started = time.perf_counter()
        build.build_index(documents, root, embedder, SplitSettings())
        build_s = time.perf_counter() - started
        engine = Engine(root, embedder)
        count = len(engine.index.passages)
        search_ms, ask_ms = time_queries(engine, [text[:80] for _, text in texts(queries)])
        before = embedder.texts
        stamps = _stamps(root)
        started = time.perf_counter()
        report = build.build_index(
            [*documents, Document("new.txt", "One more document about owls. They hunt at night.")],
            root,
            embedder,
            SplitSettings(),
        )
        add_s = time.perf_counter() - started
        add_embedded = embedder.texts - before
        after = _stamps(root)
        written = sum(p.stat().st_size for p, stamp in after.items() if stamps.get(p) != stamp)
        total = sum(p.stat().st_size for p in after)
        engine.snapshot()
        search_after, _ = time_queries(engine, [text[:80] for _, text in texts(queries)])
    return {
        "passages": count,
        "build_s_without_embedding": round(build_s, 1),
        "search_p50_ms": search_ms["p50_ms"],
        "search_p95_ms": search_ms["p95_ms"],
        "ask_p50_ms": ask_ms["p50_ms"],
        "ask_p95_ms": ask_ms["p95_ms"],
        "add_one_document_s": round(add_s, 1),
        "add_one_document_texts_embedded": add_embedded,
        "add_one_document_added": report.added,
        "add_one_document_bytes_written": written,
        "index_bytes": total,
        "search_p50_ms_after_add": search_after["p50_ms"],
    }


def _stamps(root: Path) -> dict[Path, tuple[int, int]]:
    """(mtime, inode) of every file: a file with new ones was written."""
    return {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in root.rglob("*") if p.is_file()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--passages", type=int, default=100_000)
    args = parser.parse_args(argv)
    curve = faiss_curve(args.sizes)
    at_scale = search_at_scale(args.passages)
    print(json.dumps(at_scale), flush=True)
    write_results(curve, at_scale)


def write_results(curve: list[dict[str, Any]], at_scale: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps({"faiss": curve, "cite": at_scale}, indent=1) + "\n")
    lines = [
        "# Scale: FAISS index kinds, and cite at 100k passages",
        "",
        "| vectors | source | index | build (s) | memory (MB) | query p50 (ms) | recall@10 vs exact |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['vectors']:,} | {r['source']} | {r['index']} | {r['build_s']} | {r['memory_mb']} | "
            f"{r['query_p50_ms']} | {r['recall@10_vs_exact']} |"
            for r in curve
        ),
        "",
        f"cite over {at_scale['passages']:,} passages (real text, synthetic vectors): search p50 "
        f"{at_scale['search_p50_ms']} ms / p95 {at_scale['search_p95_ms']} ms; ask p50 {at_scale['ask_p50_ms']} ms "
        f"/ p95 {at_scale['ask_p95_ms']} ms. Adding one document took {at_scale['add_one_document_s']} s and "
        f"embedded {at_scale['add_one_document_texts_embedded']} texts (its passages and sentences); it wrote "
        f"{at_scale['add_one_document_bytes_written'] / 2**20:.1f} MB (a new segment, the BM25 index and the "
        f"manifest) of the index's {at_scale['index_bytes'] / 2**20:.0f} MB. Search p50 after the add, over two "
        f"segments: {at_scale['search_p50_ms_after_add']} ms.",
        "",
    ]
    (RESULTS / "scale.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
