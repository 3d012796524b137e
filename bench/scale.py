"""How cost grows with the collection: the FAISS index kinds cite chooses by size, and cite's
whole index (bytes, load, memory, search, ask, adding a document) at 100k and 1M passages.

    make bench-scale        # or: python -m bench.scale [--sizes 100000 1000000]

Vectors are synthetic but shaped like embeddings: unit vectors scattered around 2,000
random topic centres, so that neighbours mean something (uniformly random vectors in 384
dimensions are all nearly orthogonal, and every ANN index looks bad on them). Text is real:
SciFact and ArguAna records, ten to a document, repeated under new names; building embeds
nothing. Each index is served by a fresh process (so its resident memory is its own) and
then taken one new document. 10M passages are projected from the measured bytes per
passage. Peak memory stays under ~6 GiB at 1M. Writes bench/results/scale.json and scale.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DIM = 384
TOPICS = 2000
RECORDS_PER_DOCUMENT = 10


@lru_cache(maxsize=1)
def _centres() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((TOPICS, DIM)).astype(np.float32)


def topic_vectors(count: int, seed: int, spread: float = 0.08) -> np.ndarray:
    """`count` unit vectors around TOPICS fixed centres (the same centres for every seed)."""
    centres = _centres()
    rng = np.random.default_rng(seed)
    out = np.empty((count, DIM), dtype=np.float32)
    for first in range(0, count, 200_000):  # in chunks: a 1M x 384 float64 draw would be 3 GB
        n = min(200_000, count - first)
        chunk = centres[rng.integers(0, TOPICS, n)] / np.sqrt(DIM) + rng.standard_normal((n, DIM)).astype(
            np.float32
        ) * (spread / np.sqrt(DIM) * 4)
        out[first : first + n] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 2),
    }


def faiss_curve(sizes: list[int], probes: int = 200) -> list[dict[str, Any]]:
    """Build time, bytes per vector, latency and recall against exact search of each kind cite
    can write, set up as cite searches it. `recall@10` is the index's own top 10; `in 100` is
    the share of the exact top 10 among its top 100, the candidates cite rescores exactly."""
    import faiss
    from cite.core.store import DENSE_KINDS, HNSW_KIND, IVF_KIND, build_dense_index, ready_to_search

    faiss.omp_set_num_threads(1)  # as cite serves: one thread per query
    rows = []
    for size in sizes:
        base = topic_vectors(size, seed=size)
        probe = topic_vectors(probes, seed=1)
        exact = faiss.IndexFlatIP(DIM)
        exact.add(base)
        truth = exact.search(probe, 10)[1]
        del exact
        for kind in DENSE_KINDS:
            if (kind == HNSW_KIND and size > 200_000) or (kind == IVF_KIND and size < 50_000):
                continue  # cite uses IVF-PQ from 400k (an HNSW graph of 1M takes ~13 min to build here)
            faiss.omp_set_num_threads(2)
            started = time.perf_counter()
            index, _ = build_dense_index(base, kind)
            build = time.perf_counter() - started
            faiss.omp_set_num_threads(1)
            ready_to_search(index)
            latencies, top10, top100 = [], [], []
            for row in range(probes):
                started = time.perf_counter()
                _, ids = index.search(probe[row : row + 1], 100)
                latencies.append(time.perf_counter() - started)
                top10.append(len(set(ids[0][:10]) & set(truth[row])) / 10)
                top100.append(len(set(ids[0]) & set(truth[row])) / 10)
            rows.append(
                {
                    "vectors": size,
                    "index": kind,
                    "build_s": round(build, 1),
                    "bytes_per_vector": round(len(faiss.serialize_index(index)) / size),
                    "search100_p50_ms": round(1000 * statistics.median(latencies), 2),
                    "recall@10": round(float(np.mean(top10)), 4),
                    "recall@10_in_100": round(float(np.mean(top100)), 4),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            del index
    return rows


def records() -> list[tuple[str, str]]:
    """(title, text) of every SciFact and ArguAna record."""
    found = []
    for name in ("scifact", "arguana"):
        path = ROOT.parent / "shared" / "bench" / name / "corpus.jsonl"
        with path.open(encoding="utf-8") as handle:
            found += [(r["title"], r["text"]) for r in map(json.loads, handle) if r["text"].strip()]
    return found


class SyntheticEmbedder:
    """Stands in for the model: topic vectors, no model run (timing the index, not MiniLM)."""

    name, fingerprint, dim = "synthetic", "synthetic-v1", DIM

    def __init__(self) -> None:
        self.texts = 0

    def encode(self, batch):
        self.texts += len(batch)
        return topic_vectors(len(batch), seed=self.texts)


@lru_cache(maxsize=1)
def _bases() -> list[tuple[str, str, list[tuple[Any, list[str], list[tuple[int, int]]]]]]:
    """The real documents every synthetic index repeats: (title, text, [(passage, BM25 tokens,
    sentence spans)]), split and tokenized once."""
    from cite.core.config import SplitSettings
    from cite.core.lexical import tokenize
    from cite.core.text import sentences_in_span
    from cite.core.types import Document
    from cite.indexer.build import indexing_text
    from cite.indexer.splitter import split_document

    pool = records()
    bases = []
    for first in range(0, len(pool), RECORDS_PER_DOCUMENT):
        group = pool[first : first + RECORDS_PER_DOCUMENT]
        text = "\n\n".join(f"{title}. {body}" for title, body in group)
        document = Document("base", text, title=group[0][0])
        pieces = []
        for p in split_document(document, SplitSettings()):
            spans = [(a, b) for a, b, _ in sentences_in_span(text, p.start, p.end)]
            pieces.append((p, tokenize(indexing_text(document.title, p.text)), spans))
        bases.append((document.title, text, pieces))
    return bases


def build_synthetic_index(root: Path, passages: int) -> dict[str, Any]:
    """Writes a one-segment index of about `passages` passages straight through the store
    (documents split and tokenized as cite does; vectors synthetic). Repeated documents share
    their text objects, so memory holds the base texts once."""
    from cite.core.config import SplitSettings
    from cite.core.lexical import TOKENIZER_NAME
    from cite.core.store import (
        FORMAT_VERSION,
        DocumentRecord,
        Manifest,
        quantise,
        write_segment,
        write_version,
        writer_lock,
    )
    from cite.core.types import Document, Passage, content_id

    started = time.perf_counter()
    split = SplitSettings()
    bases = _bases()
    documents, table, tokens, spans, offsets, sentence_rows = [], [], [], [], [0], []
    i = 0
    while len(table) < passages:
        title, text, pieces = bases[i % len(bases)]
        name = f"doc{i:07d}.txt"
        documents.append(Document(name, text, title=f"{title} {i // len(bases)}", source="bench"))
        for p, words, sentence_spans in pieces[: passages - len(table)]:
            table.append(Passage(content_id(name, str(p.start), p.text), name, p.start, p.end, p.text))
            tokens.append(words)
            for n, span in enumerate(sentence_spans):
                if n == 0 and p is not pieces[0][0] and spans[-1] == span:  # the overlap: stored once
                    sentence_rows.append(len(spans) - 1)
                else:
                    sentence_rows.append(len(spans))
                    spans.append(span)
            offsets.append(len(sentence_rows))
        i += 1
    sentence_count = len(spans)
    codes = np.empty((sentence_count, DIM), dtype=np.int8)
    scales = np.empty(sentence_count, dtype=np.float32)
    for first in range(0, sentence_count, 200_000):
        codes[first : first + 200_000], scales[first : first + 200_000] = quantise(
            topic_vectors(min(200_000, sentence_count - first), seed=7 + first)
        )
    from cite.core.store import SentenceArrays

    sentences = SentenceArrays(
        rows=np.asarray(sentence_rows, dtype=np.int32),
        offsets=np.asarray(offsets, dtype=np.int64),
        spans=np.asarray(spans, dtype=np.int64).reshape(-1, 2),
        vectors=codes,
        scales=scales,
    )
    prepared = time.perf_counter() - started
    started = time.perf_counter()
    with writer_lock(root):
        record = write_segment(root, documents, table, tokens, topic_vectors(len(table), seed=3), sentences)
        counts: dict[str, int] = {}
        for p in table:
            counts[p.doc] = counts.get(p.doc, 0) + 1
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            model=SyntheticEmbedder.name,
            model_fingerprint=SyntheticEmbedder.fingerprint,
            tokenizer=TOKENIZER_NAME,
            split=asdict(split),
            documents={
                d.doc: DocumentRecord(d.doc, d.sha256, d.title, len(d.text), counts[d.doc], now, d.source)
                for d in documents
            },
            segments=[record],
            files={},
            created_at=now,
        )
        write_version(root, manifest)
    return {
        "passages": len(table),
        "documents": len(documents),
        "sentences": sentence_count,
        "dense_index": record.dense_index,
        "prepare_s": round(prepared, 1),
        "write_s": round(time.perf_counter() - started, 1),
    }


def _rss_bytes(kind: str = "VmRSS") -> int:
    """Resident bytes of this process: VmRSS in all, RssAnon (its own memory) or RssFile
    (pages of mapped files, which the kernel can drop and read again)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{kind}:"):
            return int(line.split()[1]) * 1024
    return 0


def _resident() -> dict[str, int]:
    return {kind: _rss_bytes(kind) for kind in ("VmRSS", "RssAnon", "RssFile")}


def serve(root: Path, queries: int = 200) -> dict[str, Any]:
    """In a fresh process: load the index, time search and ask, memory while serving, then
    add one document and search again."""
    import faiss
    from cite.core.config import SplitSettings
    from cite.core.types import Document
    from cite.indexer.build import build_index
    from cite.retriever.engine import Engine

    faiss.omp_set_num_threads(1)
    embedder = SyntheticEmbedder()
    from cite.core.lexical import tokenize

    tokenize("code and models, not the index, are loaded before the baseline")
    embedder.encode(["warm up"])
    baseline = _resident()
    started = time.perf_counter()
    engine = Engine(root, embedder)
    load_s = time.perf_counter() - started
    loaded = _resident()
    questions = [f"{title} {text[:60]}" for title, text in records()[: queries * 7 : 7]]
    # Two passes: the first reads the mapped index files' pages from disk or the page cache
    # (a server's first minutes), the second is a warm server's steady state.
    cold, search, ask = [], [], []
    for timings in (cold, search):
        for question in questions:
            started = time.perf_counter()
            engine.search(question, 10)
            timings.append(time.perf_counter() - started)
    for question in questions[: queries // 2]:
        started = time.perf_counter()
        engine.ask(question)
        ask.append(time.perf_counter() - started)
    serving = _resident()
    passages = engine.index.passage_count
    new = Document("new/owls.txt", "Owls hunt at night. They fly without a sound.", source="new")
    if new.doc in engine.index.documents:  # left by an earlier run: taken out first, so the add adds
        build_index([], root, embedder, SplitSettings(), scope=set(), remove=[new.doc])
    started = time.perf_counter()
    report = build_index([new], root, embedder, SplitSettings(), scope={"new"})
    add_s = time.perf_counter() - started
    engine.snapshot()
    after = []
    for question in questions[:50]:
        started = time.perf_counter()
        engine.search(question, 10)
        after.append(time.perf_counter() - started)
    hit = engine.snapshot().searcher.lexical.search("owls hunt at night", 1)[0].passage.doc
    return {
        "passages": passages,
        "load_s": round(load_s, 2),
        "resident_after_load_bytes_per_passage": round((loaded["VmRSS"] - baseline["VmRSS"]) / passages),
        "resident_serving_bytes_per_passage": round((serving["VmRSS"] - baseline["VmRSS"]) / passages),
        "resident_serving_own_bytes_per_passage": round((serving["RssAnon"] - baseline["RssAnon"]) / passages),
        "resident_serving_mapped_bytes_per_passage": round((serving["RssFile"] - baseline["RssFile"]) / passages),
        "search_cold": percentiles(cold),
        "search": percentiles(search),
        "ask": percentiles(ask),
        "add_one_document_s": round(add_s, 2),
        "add_one_document_added": report.added,
        "search_after_add": percentiles(after),
        "new_document_found": hit == "new/owls.txt",
    }


def index_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def at_scale(passages: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "index"
        built = build_synthetic_index(root, passages)
        size = index_bytes(root)
        by_file: dict[str, int] = {}
        for path in (root / "segments").rglob("*"):
            if path.is_file():
                key = (
                    path.name.split(".")[0].rsplit("_", 1)[0]
                    if path.name.startswith(("bm25", "sentence"))
                    else path.name
                )
                by_file[key] = by_file.get(key, 0) + path.stat().st_size
        print(json.dumps(built), flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "bench.scale", "--serve", str(root)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-3000:])
        served = json.loads(result.stdout.strip().splitlines()[-1])
    row = {
        **built,
        **served,
        "disk_bytes_per_passage": round(size / built["passages"]),
        "disk_bytes_by_file_per_passage": {k: round(v / built["passages"]) for k, v in sorted(by_file.items())},
    }
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--curve", type=int, nargs="*", default=None, help="vector counts for the FAISS table")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        print(json.dumps(serve(args.serve)))
        return
    cite = [at_scale(size) for size in args.sizes]
    write_results([], cite)  # the cite table first: the FAISS curve at 1M takes minutes more
    write_results(faiss_curve(args.sizes if args.curve is None else args.curve), cite)


def write_results(curve: list[dict[str, Any]], cite: list[dict[str, Any]]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps({"faiss": curve, "cite": cite}, indent=1) + "\n")
    largest = max(cite, key=lambda r: r["passages"])
    lines = [
        "# Scale: cite's index at 100k and 1M passages",
        "",
        "Synthetic topic-shaped vectors, real SciFact/ArguAna text (10 records per document), one segment; "
        "served by a fresh process, one query thread. Resident = RSS growth of the serving process over "
        "its start (index files are memory-mapped: only the pages queries touch count).",
        "",
        "| passages | dense index | disk B/passage | resident B/passage: loaded / serving (own + mapped) | load (s) | "
        "search p50 / p95 (ms), warm | first pass p50 (ms) | ask p95 (ms) | add one document (s) | "
        "search p50 after add (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['passages']:,} | {r['dense_index']} | {r['disk_bytes_per_passage']:,} | "
            f"{r['resident_after_load_bytes_per_passage']:,} / {r['resident_serving_bytes_per_passage']:,} "
            f"({r['resident_serving_own_bytes_per_passage']:,} + {r['resident_serving_mapped_bytes_per_passage']:,}) | "
            f"{r['load_s']} | {r['search']['p50_ms']} / {r['search']['p95_ms']} | {r['search_cold']['p50_ms']} | "
            f"{r['ask']['p95_ms']} | "
            f"{r['add_one_document_s']} | {r['search_after_add']['p50_ms']} |"
            for r in cite
        ),
        "",
        f"10M passages, projected from the {largest['passages']:,}-passage row: "
        f"{10_000_000 * largest['disk_bytes_per_passage'] / 2**30:.1f} GiB on disk, "
        f"{10_000_000 * largest['resident_serving_bytes_per_passage'] / 2**30:.1f} GiB resident while serving, "
        f"of which {10_000_000 * largest['resident_serving_own_bytes_per_passage'] / 2**30:.1f} GiB the process's own "
        "(the rest are mapped file pages the kernel drops under pressure).",
        "",
        "Disk bytes per passage by file, at the largest size: "
        + ", ".join(f"{k} {v}" for k, v in largest["disk_bytes_by_file_per_passage"].items()),
        "",
        "## FAISS index kinds (cite's settings; recall against exact float32 search)",
        "",
        "| vectors | index | build (s) | bytes/vector | top-100 search p50 (ms) | recall@10 "
        "| exact top 10 in top 100 |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['vectors']:,} | {r['index']} | {r['build_s']} | {r['bytes_per_vector']} | "
            f"{r['search100_p50_ms']} | {r['recall@10']} | {r['recall@10_in_100']} |"
            for r in curve
        ),
        "",
    ]
    (RESULTS / "scale.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
