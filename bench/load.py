"""Load test of the running UI's HTTP API: many concurrent users asking, bounded in time
and requests, loopback only.

    python -m bench.load [--users 8] [--seconds 60] [--index .cite/index]

Starts `cite serve` on a free 127.0.0.1 port, drives /ask and /search, and writes
bench/results/load.json with requests/s, p50/p95 latency and errors.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "Who proposed the creation of a CSO joint command?",
    "Which countries let their participation in the CST expire?",
    "What did Chubays argue for?",
    "What is Tajikistan turning into?",
    "Who publishes the Monitor?",
    "How do I bake sourdough bread?",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(index: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "serve", "--index", str(index), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            call(f"http://127.0.0.1:{port}", "search", ["warm up", 3])
            return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("cite serve exited") from None
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("cite serve did not start in 120 s")


def call(base: str, endpoint: str, data: list, timeout: float = 60) -> object:
    """One request through Gradio's HTTP API: POST the call, then read its result event."""
    request = urllib.request.Request(
        f"{base}/gradio_api/call/{endpoint}",
        data=json.dumps({"data": data}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{base}/gradio_api/call/{endpoint}/{event_id}", timeout=timeout) as response:
        body = response.read().decode()
    event = next((line for line in body.splitlines() if line.startswith("event:")), "")
    if "complete" not in event:
        raise RuntimeError(f"{endpoint} failed: {body[:200]}")
    payload = next(line for line in body.splitlines() if line.startswith("data:"))
    return json.loads(payload[5:])[0]


def run_load(base: str, users: int, seconds: float, max_requests: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.time() + seconds

    def user(number: int) -> None:
        i = number
        while time.time() < stop_at:
            with lock:
                if len(latencies) + len(errors) >= max_requests:
                    return
            question = QUESTIONS[i % len(QUESTIONS)]
            endpoint, data = ("ask", [question, []]) if i % 2 == 0 else ("search", [question, 5])
            started = time.perf_counter()
            try:
                result = call(base, endpoint, data)
                assert isinstance(result, dict)
                with lock:
                    latencies.append(time.perf_counter() - started)
            except Exception as error:  # noqa: BLE001 (every failure counts as an error)
                with lock:
                    errors.append(f"{type(error).__name__}: {error}")
            i += users

    started = time.perf_counter()
    threads = [threading.Thread(target=user, args=(n,)) for n in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "users": users,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:5],
        "requests_per_second": round(len(latencies) / elapsed, 2),
        "p50_ms": round(1000 * statistics.median(ordered), 1) if ordered else None,
        "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 1) if ordered else None,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--index", type=Path, default=Path(".cite/index"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "load.json")
    args = parser.parse_args(argv)
    port = free_port()
    server = start_server(args.index, port)
    try:
        result = run_load(f"http://127.0.0.1:{port}", args.users, args.seconds, args.max_requests)
        started = time.perf_counter()
        call(f"http://127.0.0.1:{port}", "search", ["still there?", 1])
        result["responsive_after_ms"] = round(1000 * (time.perf_counter() - started), 1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
