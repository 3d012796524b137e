"""The same MiniLM three ways (torch, ONNX fp32, ONNX int8): speed and what it costs in quality.

    python -m bench.embedders [--docs 1000]

For each variant: texts/s on passages (SciFact abstracts cut to 1,000 characters) and on
single sentences, cosine of its vectors to torch's (the reference: what
sentence-transformers computes), and nDCG@10 of cite's hybrid search over a SciFact subset
indexed with it. Results: bench/results/embedders.json and embedders.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from cite.core.config import SplitSettings
from cite.core.embedder import EMBEDDERS, embedder_named

from bench.run import RESULTS, index_subset, subset

SAMPLE = 200  # texts per speed measurement


def speed(embedder: Any, texts: list[str]) -> float:
    embedder.encode(texts[:4])  # load before the clock starts
    started = time.perf_counter()
    embedder.encode(texts)
    return round(len(texts) / (time.perf_counter() - started), 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    args = parser.parse_args(argv)
    from cite.core.text import sentences_in_span

    records = subset(args.docs)[0][:SAMPLE]
    passages = [f"{r['title']}. {r['text']}"[:1000] for r in records]
    sentences = [t for r in records for _, _, t in sentences_in_span(r["text"], 0, len(r["text"]))][:SAMPLE]
    reference = None
    rows = []
    for name in ("torch", *[e for e in EMBEDDERS if e != "torch"]):
        embedder = embedder_named(name)
        vectors = embedder.encode(passages)
        if reference is None:
            reference = vectors
        cosines = (vectors * reference).sum(axis=1)
        # Speed first: searching sets OpenMP to one thread (see DenseSearcher), which torch shares.
        passages_per_s, sentences_per_s = speed(embedder, passages), speed(embedder, sentences)
        with tempfile.TemporaryDirectory() as tmp:
            measured = index_subset(args.docs, Path(tmp), embedder, SplitSettings())
        rows.append(
            {
                "embedder": name,
                "passages_per_s": passages_per_s,
                "sentences_per_s": sentences_per_s,
                "cosine_to_torch_mean": round(float(np.mean(cosines)), 4),
                "cosine_to_torch_min": round(float(np.min(cosines)), 4),
                "ndcg@10": measured.ndcg,
                "index_seconds": round(measured.seconds, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "embedders.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    torch_row = rows[0]
    lines = [
        "# The embedder three ways",
        "",
        f"2 CPU cores; speed on {SAMPLE} SciFact passages (1,000 characters) and {SAMPLE} sentences; "
        f"nDCG@10 of cite's hybrid search on the {args.docs}-abstract SciFact subset indexed with each.",
        "",
        "| embedder | passages/s | sentences/s | cosine to torch (mean / min) | nDCG@10 | index (s) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['embedder']} | {r['passages_per_s']} ({r['passages_per_s'] / torch_row['passages_per_s']:.1f}x) | "
            f"{r['sentences_per_s']} ({r['sentences_per_s'] / torch_row['sentences_per_s']:.1f}x) | "
            f"{r['cosine_to_torch_mean']} / {r['cosine_to_torch_min']} | {r['ndcg@10']} | {r['index_seconds']} |"
            for r in rows
        ),
        "",
    ]
    (RESULTS / "embedders.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
