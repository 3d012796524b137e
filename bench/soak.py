"""Soak test: 16 simulated users for N minutes against one `cite serve`, loopback only.

    python -m bench.soak [--minutes 10] [--users 16]

Indexes a private copy of seeds/ with the real model, serves it on a free 127.0.0.1 port,
and has the users mix questions, follow-ups, searches, listings, uploads and removals (JSON
API; some questions through the Gradio path) while another process re-indexes the folder
round after round (`cite index`, a new file each round). Every citation of every answer is
checked against the document's original text; the server's RSS is sampled throughout.
Writes bench/results/soak.json: requests, errors and p50/p95 per endpoint, RSS over time and
its growth after warm-up, citations checked. It stops by itself after --minutes.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.load import ROOT, Client, free_port, percentiles, start_server

SEEDS = ROOT / "seeds"
FOLLOW_UPS = ["Why?", "Who else was involved?", "And when was that?", "What happened next?"]
PLACES = ["Tromsø", "Valparaíso", "Hobart", "Galway", "Mombasa", "Ushuaia", "Nuuk", "Suva"]
COLOURS = ["red", "white", "striped", "green", "black", "yellow"]
MAX_MINUTES = 60
ACTIONS = {  # weights; uploads and removals are few, as on a real server, and each waits its turn
    "ask": 34,
    "follow_up": 16,
    "search": 25,
    "gradio_ask": 10,
    "documents": 7,
    "upload": 4,
    "remove": 4,
}


class Soak:
    """The shared record: latencies and errors per endpoint, the texts every citation is checked against."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: defaultdict[str, list[float]] = defaultdict(list)
        self.errors: defaultdict[str, list[str]] = defaultdict(list)
        self.originals: dict[str, str] = {}  # document name -> its text, as the index holds it
        self.citations = 0
        self.wrong_citations: list[str] = []
        self.answers = 0

    def record(self, endpoint: str, seconds: float | None, error: str | None = None) -> None:
        with self.lock:
            if error is None:
                self.latencies[endpoint].append(seconds or 0.0)
            else:
                self.errors[endpoint].append(error)

    def know(self, name: str, text: str) -> None:
        with self.lock:
            self.originals[name] = text

    def check(self, answer: dict[str, Any]) -> None:
        """Every quote must be its document's original[start:end]."""
        with self.lock:
            self.answers += 1
            for citation in answer["citations"]:
                self.citations += 1
                original = self.originals.get(citation["doc"])
                if original is None or original[citation["start"] : citation["end"]] != citation["quote"]:
                    self.wrong_citations.append(f"{citation['doc']}:{citation['start']}-{citation['end']}")


def text_of(path: Path) -> str:
    """A file's text as the indexer reads it (the same loader: citations point into this)."""
    from cite.indexer.loaders import load_paths

    return load_paths([path]).documents[0].text


def note(rng: random.Random, label: str) -> tuple[str, str]:
    """(a small document's text, a question it answers)."""
    place, colour, year = rng.choice(PLACES), rng.choice(COLOURS), rng.randint(1800, 1990)
    text = (
        f"Soak note {label}.\n\nThe {colour} lighthouse at {place} was built in {year}. "
        f"Its keeper in {label} logged {rng.randint(10, 900)} ships.\n\n"
        f"The harbour of {place} freezes in {rng.choice(['January', 'March', 'never'])}."
    )
    return text, f"When was the {colour} lighthouse at {place} built?"


def user(number: int, port: int, soak: Soak, stop: threading.Event, questions: list[str], work: Path) -> None:
    rng = random.Random(number)
    client, writes = Client(port, timeout=120), Client(port, timeout=600)
    mine: list[tuple[str, str]] = []  # my uploads: (document name, a question it answers)
    asked: list[str] = []
    uploads = 0
    actions, weights = list(ACTIONS), list(ACTIONS.values())
    while not stop.is_set():
        action = rng.choices(actions, weights)[0]
        if action == "remove" and not mine:
            action = "upload"
        if action == "upload" and len(mine) >= 3:
            action = "remove"
        started = time.perf_counter()
        try:
            if action in ("ask", "gradio_ask"):
                question = (
                    rng.choice([q for _, q in mine] or questions) if rng.random() < 0.3 else rng.choice(questions)
                )
                if action == "ask":
                    answer = client.json("POST", "/api/ask", {"question": question})
                else:
                    answer = client.gradio("ask", [question, []])
                soak.check(answer)
                asked.append(question)
            elif action == "follow_up":
                history = asked[-2:] or [rng.choice(questions)]
                answer = client.json("POST", "/api/ask", {"question": rng.choice(FOLLOW_UPS), "history": history})
                soak.check(answer)
            elif action == "search":
                hits = client.json("POST", "/api/search", {"question": rng.choice(questions), "k": rng.randint(1, 20)})
                assert isinstance(hits["hits"], list)
            elif action == "documents":
                assert isinstance(client.json("GET", "/api/documents"), list)
            elif action == "upload":
                uploads += 1
                name = f"soak-u{number}-{uploads}.txt"
                text, question = note(rng, f"u{number}-{uploads}")
                path = work / "uploads" / name
                path.write_text(text, encoding="utf-8")
                soak.know(f"uploads/{name}", text_of(path))
                added = upload(writes, name, path.read_bytes())
                assert added == [f"uploads/{name}"], added
                mine.append((f"uploads/{name}", question))
            else:
                name, _ = mine.pop(0)
                removed = writes.json("POST", "/api/documents/remove", {"names": [name]})["removed"]
                assert removed == [name], removed
            soak.record(action, time.perf_counter() - started)
        except Exception as error:  # noqa: BLE001 (every failure counts as an error)
            soak.record(action, None, f"{type(error).__name__}: {str(error)[:200]}")
    client.close()
    writes.close()


def upload(client: Client, name: str, data: bytes) -> list[str]:
    """POST /api/documents with one file (multipart, built by hand: the standard library has no encoder)."""
    boundary = f"cite-soak-{random.getrandbits(64):x}"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            f"Content-Type: text/plain\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, reply = client.request(
        "POST", "/api/documents", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    if status != 200:
        raise RuntimeError(f"upload answered {status}: {reply[:200]!r}")
    return json.loads(reply)["added"]


def reindex(docs: Path, index: Path, soak: Soak, stop: threading.Event, rounds: list[dict[str, Any]]) -> None:
    """`cite index` from another process, round after round: each round swaps in a new file."""
    rng, previous = random.Random(99), None
    while not stop.is_set():
        number = len(rounds) + 1
        path = docs / f"round-{number}.txt"
        text, _ = note(rng, f"round {number}")
        path.write_text(text, encoding="utf-8")
        soak.know(path.name, text_of(path))
        if previous is not None:
            previous.unlink()
        previous = path
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "cite.ui.cli", "index", str(docs), "--index", str(index), "--wait", "600"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        rounds.append({"round": number, "seconds": round(time.perf_counter() - started, 1), "rc": done.returncode})
        if done.returncode != 0:
            soak.record("reindex", None, done.stderr.strip()[-200:])
        else:
            soak.record("reindex", time.perf_counter() - started)
        stop.wait(5)


MEMORY_KINDS = ("VmRSS", "RssAnon", "RssFile")  # all resident; the process's own; pages of mapped files


def rss_kb(pid: int) -> dict[str, int] | None:
    """The server's resident memory in kB, by MEMORY_KINDS: mapped index files count in VmRSS
    (RssFile) but are the kernel's to drop; RssAnon is what the process itself holds."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    found = {line.split(":")[0]: int(line.split()[1]) for line in lines if line.split(":")[0] in MEMORY_KINDS}
    return found if len(found) == len(MEMORY_KINDS) else None


def memory_growth(samples: list[tuple[float, int]], warm_up: float) -> dict[str, Any]:
    """Memory after warm-up: the median of its first minute against the median of the last minute."""
    after = [(t, kb) for t, kb in samples if t >= warm_up]
    if len(after) < 4:
        return {"growth_percent": None}
    first = statistics.median(kb for t, kb in after if t < after[0][0] + 60)
    last = statistics.median(kb for t, kb in after if t > after[-1][0] - 60)
    return {
        "after_warm_up_mb": round(first / 1024, 1),
        "at_end_mb": round(last / 1024, 1),
        "peak_mb": round(max(kb for _, kb in samples) / 1024, 1),
        "growth_percent": round(100 * (last - first) / first, 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help=f"how long (default 10, at most {MAX_MINUTES})")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument(
        "--warm-up", type=float, default=None, help="seconds not counted in memory growth (default 20%%)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= MAX_MINUTES or not 1 <= args.users <= 256:
        parser.error(f"--minutes must be in (0, {MAX_MINUTES}] and --users in 1..256")
    seconds = args.minutes * 60
    warm_up = args.warm_up if args.warm_up is not None else 0.2 * seconds
    work = Path(tempfile.mkdtemp(prefix="cite-soak-"))
    docs, index = work / "docs", work / "index"
    (work / "uploads").mkdir()
    shutil.copytree(SEEDS, docs, ignore=shutil.ignore_patterns("*.jsonl"))
    soak = Soak()
    for path in sorted(docs.glob("*.txt")):
        soak.know(path.name, text_of(path))
    questions = [json.loads(line)["question"] for line in (SEEDS / "questions.jsonl").read_text().splitlines()]
    print(f"soak: indexing {docs} ...", file=sys.stderr)
    command = [sys.executable, "-m", "cite.ui.cli", "index", str(docs), "--index", str(index)]
    subprocess.run(command, cwd=ROOT, check=True)
    port = free_port()
    log = open(work / "server.log", "w")
    server = start_server(index, port, log)
    stop, rounds, samples = threading.Event(), [], []
    documents_at_start = len(Client(port).json("GET", "/api/documents"))
    print(f"soak: {args.users} users for {args.minutes:g} min on 127.0.0.1:{port} ...", file=sys.stderr)
    threads = [threading.Thread(target=user, args=(n, port, soak, stop, questions, work)) for n in range(args.users)]
    threads.append(threading.Thread(target=reindex, args=(docs, index, soak, stop, rounds)))
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        while (elapsed := time.monotonic() - started) < seconds:
            kb = rss_kb(server.pid)
            if kb is not None:
                samples.append((round(elapsed, 1), kb))
            stop.wait(min(5.0, max(seconds - elapsed, 0.0)))
        stop.set()
        for thread in threads:
            thread.join(timeout=660)
        elapsed = time.monotonic() - started
        documents_at_end = len(Client(port).json("GET", "/api/documents"))
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=30)
        log.close()
    endpoints = sorted(set(soak.latencies) | set(soak.errors))
    result = {
        "users": args.users,
        "minutes": args.minutes,
        "seconds": round(elapsed, 1),
        "requests": sum(len(v) for v in soak.latencies.values()) + sum(len(v) for v in soak.errors.values()),
        "errors": sum(len(v) for v in soak.errors.values()),
        "requests_per_second": round(sum(len(v) for v in soak.latencies.values()) / elapsed, 2),
        "endpoints": {
            name: {
                "requests": len(soak.latencies[name]) + len(soak.errors[name]),
                "errors": len(soak.errors[name]),
                "error_samples": soak.errors[name][:3],
                **percentiles(soak.latencies[name]),
            }
            for name in endpoints
        },
        "answers_checked": soak.answers,
        "citations_checked": soak.citations,
        "citations_wrong": len(soak.wrong_citations),
        "wrong_samples": soak.wrong_citations[:5],
        "reindex_rounds": len(rounds),
        "memory": {
            "warm_up_s": warm_up,
            **memory_growth([(t, kb["VmRSS"]) for t, kb in samples], warm_up),
            "own": memory_growth([(t, kb["RssAnon"]) for t, kb in samples], warm_up),
            "mapped_files": memory_growth([(t, kb["RssFile"]) for t, kb in samples], warm_up),
            "rss_mb_every_30s": [(t, round(kb["VmRSS"] / 1024, 1)) for t, kb in samples[::6]],
            "own_mb_every_30s": [(t, round(kb["RssAnon"] / 1024, 1)) for t, kb in samples[::6]],
        },
        "documents_at_start": documents_at_start,
        "documents_at_end": documents_at_end,
    }
    result["server_log_tracebacks"] = (work / "server.log").read_text(errors="replace").count("Traceback")
    shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1, ensure_ascii=False))
    return result


if __name__ == "__main__":
    main()
