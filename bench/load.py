"""Load test of the running server's two HTTP APIs: many concurrent users asking, bounded in
time and requests, loopback only.

    python -m bench.load [--users 16] [--seconds 60] [--path json|gradio|both] [--index .cite/index]

Starts `cite serve` on a free 127.0.0.1 port and drives ask and search through the JSON API
(`POST /api/ask`, `/api/search`: one request per call) and through Gradio's queue API (a POST,
then the result's event stream); writes bench/results/load.json with requests/s, p50/p95
latency and errors for each path.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "Who proposed the creation of a CSO joint command?",
    "Which countries let their participation in the CST expire?",
    "What did Chubays argue for?",
    "What is Tajikistan turning into?",
    "Who publishes the Monitor?",
    "How do I bake sourdough bread?",
]
PATHS = ("json", "gradio")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Client:
    """One user's keep-alive connection to the server on 127.0.0.1 (reopened after a failure)."""

    def __init__(self, port: int, password: str | None = None, timeout: float = 120) -> None:
        self.port, self.timeout = port, timeout
        token = base64.b64encode(f"cite:{password}".encode()).decode() if password else None
        self.headers = {"Authorization": f"Basic {token}"} if token else {}
        self._connection: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, bytes]:
        """(status, body) of one request. A kept-alive connection the server has closed while it
        idled (uvicorn closes them after 5 s) is reopened once, as HTTP clients do."""
        reused = self._connection is not None
        try:
            return self._send(method, path, body, headers)
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            if not reused:
                raise
            return self._send(method, path, body, headers)

    def _send(self, method: str, path: str, body: bytes | None, headers: dict | None) -> tuple[int, bytes]:
        if self._connection is None:
            self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self._connection.request(method, path, body=body, headers={**self.headers, **(headers or {})})
            response = self._connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def json(self, method: str, path: str, payload: Any = None) -> Any:
        """The JSON API: one call; RuntimeError unless it answers 200."""
        body = None if payload is None else json.dumps(payload).encode()
        status, data = self.request(method, path, body, {"Content-Type": "application/json"} if body else None)
        if status != 200:
            raise RuntimeError(f"{method} {path} answered {status}: {data[:200]!r}")
        return json.loads(data)

    def gradio(self, endpoint: str, data: list) -> Any:
        """Gradio's queue API: POST the call, then read its result event."""
        status, body = self.request(
            "POST",
            f"/gradio_api/call/{endpoint}",
            json.dumps({"data": data}).encode(),
            {"Content-Type": "application/json"},
        )
        if status != 200:
            raise RuntimeError(f"/gradio_api/call/{endpoint} answered {status}: {body[:200]!r}")
        event_id = json.loads(body)["event_id"]
        status, stream = self.request("GET", f"/gradio_api/call/{endpoint}/{event_id}")
        lines = stream.decode().splitlines()
        event = next((line for line in lines if line.startswith("event:")), "")
        if status != 200 or "complete" not in event:
            raise RuntimeError(f"{endpoint} failed: {stream[:200]!r}")
        return json.loads(next(line for line in lines if line.startswith("data:"))[5:])[0]

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def start_server(
    index: Path, port: int, log: Any = subprocess.DEVNULL, password: str | None = None
) -> subprocess.Popen:
    """`cite serve` over `index` on 127.0.0.1:`port`, once it answers."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "CITE_PASSWORD": password or ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "cite.ui.cli", "serve", "--index", str(index), "--port", str(port)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT if log is not subprocess.DEVNULL else subprocess.DEVNULL,
        env=env,
    )
    client = Client(port, password, timeout=10)
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            client.json("GET", "/api/documents")
            client.close()
            return process
        except (OSError, RuntimeError, http.client.HTTPException):
            if process.poll() is not None:
                raise RuntimeError("cite serve exited") from None
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("cite serve did not start in 180 s")


def one_call(client: Client, path: str, endpoint: str, question: str) -> dict:
    """One ask or search through `path` ("json" or "gradio")."""
    if path == "json":
        body = {"question": question} if endpoint == "ask" else {"question": question, "k": 5}
        return client.json("POST", f"/api/{endpoint}", body)
    return client.gradio(endpoint, [question, []] if endpoint == "ask" else [question, 5])


def run_load(port: int, path: str, users: int, seconds: float, max_requests: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.time() + seconds

    def user(number: int) -> None:
        client, i = Client(port), number
        while time.time() < stop_at:
            with lock:
                if len(latencies) + len(errors) >= max_requests:
                    break
            question = QUESTIONS[i % len(QUESTIONS)]
            started = time.perf_counter()
            try:
                result = one_call(client, path, "ask" if i % 2 == 0 else "search", question)
                assert isinstance(result, dict)
                with lock:
                    latencies.append(time.perf_counter() - started)
            except Exception as error:  # noqa: BLE001 (every failure counts as an error)
                with lock:
                    errors.append(f"{type(error).__name__}: {error}")
            i += users
        client.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=user, args=(n,)) for n in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "path": path,
        "users": users,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:5],
        "requests_per_second": round(len(latencies) / elapsed, 2),
        **percentiles(latencies),
    }


def percentiles(latencies: list[float]) -> dict[str, float | None]:
    """p50 and p95 in milliseconds (None without requests)."""
    ordered = sorted(latencies)
    if not ordered:
        return {"p50_ms": None, "p95_ms": None}
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--path", choices=(*PATHS, "both"), default="both")
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--index", type=Path, default=Path(".cite/index"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "load.json")
    args = parser.parse_args(argv)
    port = free_port()
    server = start_server(args.index, port)
    result: dict[str, Any] = {}
    try:
        for path in PATHS if args.path == "both" else (args.path,):
            client = Client(port)
            for question in QUESTIONS:  # warm up: the first calls load lazily
                one_call(client, path, "ask", question)
            client.close()
            result[path] = run_load(port, path, args.users, args.seconds, args.max_requests)
            started = time.perf_counter()
            one_call(Client(port), path, "search", "still there?")
            result[path]["responsive_after_ms"] = round(1000 * (time.perf_counter() - started), 1)
        if len(result) == 2:
            result["json_vs_gradio_requests_per_second"] = round(
                result["json"]["requests_per_second"] / max(result["gradio"]["requests_per_second"], 1e-9), 2
            )
        paths = [result[path] for path in PATHS if path in result]
        result.update(  # over both paths (what tests/e2e/test_reliability.py reads)
            requests=sum(r["requests"] for r in paths),
            errors=sum(r["errors"] for r in paths),
            error_samples=[e for r in paths for e in r["error_samples"]][:5],
            responsive_after_ms=max(r["responsive_after_ms"] for r in paths),
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
