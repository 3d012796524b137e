"""A BEIR set's test queries through `cite search --batch`, against `cite eval --beir` on the same index.

    python -m bench.beir_batch --beir ../shared/bench/arguana --index /tmp/arguana-index [--k 10 100]

1. `cite eval --beir FOLDER --index INDEX --json` builds (or updates) the index and reports the
   hybrid nDCG@10: the published figure.
2. The judged queries are written as `{"id", "question"}` lines and run through
   `cite search --batch FILE --json --k K --index INDEX`, as a user would run them.
3. Each query's passages are scored as the eval scores them: a document by its best passage,
   the query's own id dropped (ArguAna's queries are corpus documents, as BEIR drops them),
   the top 10 kept; nDCG@10 by pytrec_eval, a query with no answer line counting 0.
4. To say where a difference comes from, the same hybrid search runs in this process, one
   change at a time from the eval to the CLI: as the eval runs it (queries embedded in batches,
   300 passages each); K passages; each query embedded alone (int8 activations are quantised
   per batch, so a query's vector moves with its batch mates); then the CLI itself (its query
   cleaned as every door cleans it). Per step: nDCG@10 and the queries whose ranking changed.

Prints one JSON report (the commands, the figures, the date, the commit and the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ARGUANA = ROOT.parent / "shared" / "bench" / "arguana"
NDCG = "ndcg_cut_10"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

Run = dict[str, dict[str, float]]


def cite(*args: object) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    """`cite ARGS` as a separate process (the installed command's module), and its command line."""
    command = [sys.executable, "-m", "cite.ui.cli", *map(str, args)]
    return command, subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


def shown(command: Sequence[str]) -> str:
    return " ".join(["cite", *command[3:]])


def ndcg10(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]]) -> float:
    """Mean nDCG@10 over every judged query (pytrec_eval); a query missing from `run` scores 0."""
    import pytrec_eval

    scores = pytrec_eval.RelevanceEvaluator(dict(qrels), {NDCG}).evaluate({q: dict(d) for q, d in run.items() if d})
    return sum(scores.get(qid, {}).get(NDCG, 0.0) for qid in qrels) / len(qrels)


def document_run(ranked: Mapping[str, Sequence[str]], drop_self: bool, depth: int = 10) -> Run:
    """TREC run from each query's passages' documents, best first: a document where its best
    passage ranks, the query's own id dropped, `depth` kept. Scores are descending ranks, so
    pytrec_eval keeps exactly this order (the CLI's scores are rounded and could tie)."""
    run: Run = {}
    for qid, docs in ranked.items():
        order = list(dict.fromkeys(doc for doc in docs if not (drop_self and doc == qid)))[:depth]
        run[qid] = {doc: float(len(order) - rank) for rank, doc in enumerate(order)}
    return run


def changed(run: Run, other: Run) -> list[str]:
    """Queries whose ranked documents differ, compared as deep as the shorter list goes (10 at most)."""
    ids = []
    for qid in sorted(run.keys() | other.keys()):
        mine, theirs = _order(run.get(qid, {})), _order(other.get(qid, {}))
        depth = min(len(mine), len(theirs))
        if mine[:depth] != theirs[:depth] or not depth and mine != theirs:
            ids.append(qid)
    return ids


def _order(scores: Mapping[str, float]) -> list[str]:
    return [doc for doc, _ in sorted(scores.items(), key=lambda item: (-item[1], item[0]))][:10]


def batch_run(queries: Mapping[str, str], index: Path, k: int, folder: Path) -> tuple[str, dict[str, list[str]], float]:
    """The queries through `cite search --batch --json`: (command, documents per query, seconds)."""
    batch = folder / "queries.jsonl"
    with batch.open("w", encoding="utf-8") as out:
        for qid, text in queries.items():
            out.write(json.dumps({"id": qid, "question": text}, ensure_ascii=False) + "\n")
    started = time.perf_counter()
    command, done = cite("search", "--batch", batch, "--json", "--k", k, "--index", index)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{shown(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    docs = {}
    for line in done.stdout.splitlines():
        record = json.loads(line)
        docs[str(record["id"])] = [hit["doc"] for hit in record["hits"]]
    return shown(command).replace(str(batch), "QUERIES.jsonl"), docs, seconds


def in_process_runs(index_root: Path, queries: Mapping[str, str], ks: Sequence[int], drop_self: bool) -> dict[str, Run]:
    """The hybrid search the eval runs, in this process: as the eval runs it, then with K
    passages, then with each query embedded alone (as `cite search` embeds it)."""
    from cite.core.config import load_settings
    from cite.core.embedder import default_embedder
    from cite.core.store import read_index
    from cite.eval.runner import embed_queries, run_queries, searchers

    embedder, settings = default_embedder(), load_settings(index_root)
    hybrid = searchers(read_index(index_root), embedder, settings.search)["hybrid"]
    batched = embed_queries(embedder, queries)  # as the eval embeds them: in length-sorted batches
    alone = {qid: embedder.encode([text]) for qid, text in queries.items()}
    runs = {"eval (batched vectors, 300 passages)": run_queries(hybrid, queries, batched, 100, True, drop_self)}

    def passages(vectors: Mapping[str, Any], k: int) -> Callable[[str], list[str]]:
        return lambda qid: [hit.passage.doc for hit in hybrid(queries[qid], vectors[qid], k)]

    for k in ks:
        for name, vectors in ((f"batched vectors, {k} passages", batched), (f"alone, {k} passages", alone)):
            found = passages(vectors, k)
            runs[name] = document_run({qid: found(qid) for qid in queries}, drop_self)
    return runs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", type=Path, default=ARGUANA, help="BEIR folder (default: the shared ArguAna)")
    parser.add_argument("--index", type=Path, default=Path("/tmp/arguana-index"), help="index folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--k", type=int, nargs="+", default=[10], help="passages per query in `cite search`")
    parser.add_argument("--skip-explain", action="store_true", help="skip the in-process runs (step 4)")
    args = parser.parse_args(argv)

    from cite.eval.datasets import load_beir

    dataset = load_beir(args.beir, args.split)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as reports:  # not eval/reports: this run is not the published one
        eval_args = ("--beir", args.beir, "--split", args.split, "--index", args.index, "--json")
        command, done = cite("eval", *eval_args, "--report-dir", reports)
    if done.returncode != 0:
        raise SystemExit(f"{shown(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    command = command[: command.index("--report-dir")]
    evaluated = json.loads(done.stdout)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "cpu": _cpu(),
        "dataset": f"{dataset.name}-{args.split}",
        "queries": len(dataset.queries),
        "eval": {
            "command": shown(command),
            "hybrid_ndcg@10": evaluated["methods"]["hybrid"]["metrics"]["ndcg@10"],
            "seconds": round(time.perf_counter() - started, 1),
        },
        "cli": {},
    }
    cli_runs = {}
    with tempfile.TemporaryDirectory() as folder:
        for k in args.k:
            shown_command, docs, seconds = batch_run(dataset.queries, args.index, k, Path(folder))
            cli_runs[k] = document_run(docs, dataset.drops_self)
            report["cli"][f"k={k}"] = {
                "command": shown_command,
                "answered": len(docs),
                "ndcg@10": round(ndcg10(cli_runs[k], dataset.qrels), 4),
                "seconds": round(seconds, 1),
            }
    if not args.skip_explain:
        runs = in_process_runs(args.index, dataset.queries, args.k, dataset.drops_self)
        eval_run = runs["eval (batched vectors, 300 passages)"]
        report["steps"] = {"eval run again in this process": {"ndcg@10": round(ndcg10(eval_run, dataset.qrels), 4)}}
        for k in args.k:
            chain = [
                (f"{k} passages", runs[f"batched vectors, {k} passages"]),
                ("each query embedded alone", runs[f"alone, {k} passages"]),
                ("the CLI (query cleaned)", cli_runs[k]),
            ]
            steps, previous = {}, eval_run
            for name, run in chain:
                ids = changed(run, previous)
                steps[name] = {"ndcg@10": round(ndcg10(run, dataset.qrels), 4), "queries_changed": len(ids)}
                if len(ids) <= 20:
                    odd = [qid for qid in ids if not dataset.queries[qid].isprintable()]
                    steps[name] |= {"changed": ids, "of_them_with_non_printable_characters": len(odd)}
                previous = run
            report["steps"][f"k={k}"] = steps
    print(json.dumps(report, indent=2))
    return report


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
