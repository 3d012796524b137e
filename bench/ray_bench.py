"""Ray's overhead on one box: `cite index` locally and on a local Ray with 1 and 2 workers.

    python -m bench.ray_bench [--docs 1000]

The same first `--docs` SciFact abstracts (read in place) are indexed three times: by the local
build (onnxruntime on every core), on a local Ray with 1 worker process holding every core
(the overhead alone: scheduling, pickling documents, the actor's start and model load) and
with 2 worker processes of 1 core each. It reports documents/s, the Ray build's time against
the local one's, the time `ray.init` takes (paid once per `cite index --ray` without an
address), and whether the stored vectors and the rankings of SciFact's test queries are the same
in the local index and the Ray ones (they should be: a text's vector is a function of the text
alone, and int8 codes use one fixed range). Results: bench/results/ray.json, ray.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "bench" / "scifact"
RESULTS = ROOT / "bench" / "results"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def first_documents(count: int) -> list:
    """The first `count` records of SciFact's corpus.jsonl, as `cite index corpus.jsonl` reads them."""
    from cite.core.types import Document

    documents = []
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in itertools.islice(handle, count):
            record = json.loads(line)
            documents.append(Document(str(record["_id"]), str(record["text"]), str(record.get("title") or "")))
    return documents


def compare(local: Path, other: Path, questions: list[str]) -> dict[str, float]:
    """Vector drift (1 - cosine of the stored vectors, normalised, same passage id), the share of
    passages stored bit for bit alike, and top-10 agreement of the two indexes."""
    from cite.core.embedder import embedder_named
    from cite.core.store import read_index
    from cite.retriever.engine import Engine

    a, b = read_index(local), read_index(other)
    ids = a.passage_ids(range(a.passage_count))
    shared = [(row, b.row_of[pid]) for row, pid in enumerate(ids) if pid in b.row_of]
    mine, theirs = a.vectors([r for r, _ in shared]), b.vectors([r for _, r in shared])
    norms = np.linalg.norm(mine, axis=1) * np.linalg.norm(theirs, axis=1)
    cosines = (np.sum(mine * theirs, axis=1) / np.clip(norms, 1e-12, None)).tolist()
    identical = float(np.mean(np.all(mine == theirs, axis=1))) if shared else 0.0
    embedder = embedder_named("onnx-int8")
    vectors = embedder.encode(questions)
    one, two = Engine(local, embedder), Engine(other, embedder)
    same, overlap = 0, []
    for question, vector in zip(questions, vectors, strict=True):
        x = [h.passage.id for h in one.search_with_vector(question, vector[None, :], 10)]
        y = [h.passage.id for h in two.search_with_vector(question, vector[None, :], 10)]
        same += x == y
        overlap.append(len(set(x) & set(y)) / max(len(x), 1))
    return {
        "passages": len(a.passages),
        "same_passages": len(cosines) == len(a.passages) == len(b.passages),
        "identical_vectors": round(identical, 4),
        "max_vector_drift": round(1 - min(cosines), 6),
        "mean_vector_drift": round(1 - float(np.mean(cosines)), 7),
        "queries": len(questions),
        "identical_top10": round(same / len(questions), 4),
        "mean_overlap_at_10": round(float(np.mean(overlap)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000)
    args = parser.parse_args()
    import ray
    from cite.core.config import SplitSettings
    from cite.core.embedder import embedder_named
    from cite.indexer.build import build_index
    from cite.indexer.distributed import RaySettings, build_index_on_ray

    documents = first_documents(args.docs)
    questions = [json.loads(line)["text"] for line in (SCIFACT / "queries.jsonl").open(encoding="utf-8")][:300]
    cores = os.cpu_count() or 1
    out: dict = {"docs": len(documents), "cores": cores}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        build_index(documents, root / "local", embedder_named("onnx-int8"), SplitSettings())
        out["local_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, configure_logging=False)
        out["ray_init_s"] = round(time.perf_counter() - started, 1)
        try:
            for workers in (1, 2):
                settings = RaySettings(workers=workers, cpus_per_worker=max(1, cores // workers))
                started = time.perf_counter()
                build_index_on_ray(
                    documents, root / f"ray{workers}", embedder_named("onnx-int8"), SplitSettings(), settings
                )
                out[f"ray{workers}_s"] = round(time.perf_counter() - started, 1)
        finally:
            ray.shutdown()
        # The local build again, after: on a shared machine the load drifts; the mean of the two is the baseline.
        started = time.perf_counter()
        build_index(documents, root / "local-again", embedder_named("onnx-int8"), SplitSettings())
        out["local_runs_s"] = [out["local_s"], round(time.perf_counter() - started, 1)]
        out["local_s"] = round(sum(out["local_runs_s"]) / 2, 1)
        out["load_average"] = round(os.getloadavg()[0], 1)
        for workers in (1, 2):
            out[f"ray{workers}_vs_local"] = compare(root / "local", root / f"ray{workers}", questions)
    for name in ("local", "ray1", "ray2"):
        out[f"{name}_docs_per_s"] = round(len(documents) / out[f"{name}_s"], 2)
    out["ray2_overhead"] = round(out["ray2_s"] / out["local_s"] - 1, 3)
    out["ray1_overhead"] = round(out["ray1_s"] / out["local_s"] - 1, 3)
    out["docs_per_core_s"] = round(out["ray2_docs_per_s"] / cores, 2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ray.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "ray.md").write_text(report(out), encoding="utf-8")
    print(report(out))


def report(out: dict) -> str:
    rows = [
        ("local build (mean of a run before and after)", out["local_s"], out["local_docs_per_s"], ""),
        ("Ray, 1 worker x all cores", out["ray1_s"], out["ray1_docs_per_s"], f"{out['ray1_overhead']:+.1%}"),
        ("Ray, 2 workers x 1 core", out["ray2_s"], out["ray2_docs_per_s"], f"{out['ray2_overhead']:+.1%}"),
    ]
    lines = [
        f"# Ray build vs local build: {out['docs']} SciFact abstracts, {out['cores']} cores",
        "",
        f"Local runs {out['local_runs_s']} s; load average at the end {out['load_average']} (a shared machine).",
        "",
        "| | wall s | docs/s | vs local |",
        "|---|---|---|---|",
        *[f"| {name} | {seconds} | {rate} | {delta} |" for name, seconds, rate, delta in rows],
        "",
        f"`ray.init` (a local Ray, no dashboard): {out['ray_init_s']} s, paid once per `cite index --ray` "
        "without an address (not in the times above).",
        "",
        "Local index against the Ray ones, SciFact test queries, top 10:",
        "",
        "| | passages equal | vectors identical | max 1-cos | identical top 10 | mean overlap@10 |",
        "|---|---|---|---|---|---|",
    ]
    for workers in (1, 2):
        c = out[f"ray{workers}_vs_local"]
        lines.append(
            f"| {workers} worker(s) | {c['same_passages']} | {c['identical_vectors']:.1%} | {c['max_vector_drift']} "
            f"| {c['identical_top10']:.1%} | {c['mean_overlap_at_10']:.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
