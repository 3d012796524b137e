"""The security probe of issue #26, finding by finding, against a real `cite serve` on loopback.

    python -m bench.probe [--code DIR] [--index DIR] [--out bench/results/probe.json]

Each finding gets a fresh server (`python -m ui.cli serve` run from `--code`, a checkout of
any commit: the same probe measures the code before and after a fix) over a copy of the
seeds' index, sends what the attacker sent, and records what happened: the HTTP status, the
server's resident memory (its own and with its child processes, sampled every 50 ms), the
seconds it took, and the p95 latency of questions asked meanwhile. Hostile files are made
here, full size. Requests go to 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "probe-password-7"
SECRET = "The launch code is swordfish."
QUESTION = {"question": "Who proposed the creation of a CSO joint command?"}


@dataclass
class Server:
    process: subprocess.Popen
    url: str

    def tree_rss_mb(self) -> tuple[float, float]:
        """(the server's own resident MB, with its children's)."""
        own = _rss_kb(self.process.pid)
        children = sum(_rss_kb(int(p)) for p in _children(self.process.pid))
        return own / 1024, (own + children) / 1024


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[str]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for kid in kids:
            found += [kid, *_children(int(kid))]
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(code: Path, index: Path, password: str | None = None) -> Iterator[Server]:
    """`cite serve` from `code` over a private copy of `index`, stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="cite-probe-") as folder:
        root = Path(folder) / "index"
        shutil.copytree(index, root)
        port = _free_port()
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "CITE_PASSWORD": password or ""}
        log = open(Path(folder) / "server.log", "w")  # noqa: SIM115 (closed below)
        process = subprocess.Popen(
            [sys.executable, "-m", "ui.cli", "serve", "--index", str(root), "--port", str(port)],
            cwd=code,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        server = Server(process, f"http://127.0.0.1:{port}")
        auth = ("cite", password) if password else None
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{server.url}/api/documents", auth=auth, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("cite serve did not start:\n" + (Path(folder) / "server.log").read_text()[-2000:])
            time.sleep(0.5)
        try:
            yield server
        finally:
            process.kill()
            process.wait(timeout=30)
            for kid in _children(process.pid):
                try:
                    os.kill(int(kid), 9)
                except OSError:
                    pass
            log.close()


@dataclass
class Watch:
    """Memory and question latency sampled while a hostile request runs."""

    server: Server
    before: tuple[float, float] = (0.0, 0.0)
    peak: list[float] = field(default_factory=lambda: [0.0, 0.0])
    latencies: list[float] = field(default_factory=list)
    failed_questions: int = 0

    def run(self, action: Callable[[], Any], seconds: float) -> tuple[Any, float]:
        """(what `action` returned or raised, its seconds), with memory and questions watched meanwhile."""
        self.before = self.server.tree_rss_mb()
        done = threading.Event()
        threads = [threading.Thread(target=watcher, args=(done,)) for watcher in (self._sample, self._ask)]
        for thread in threads:
            thread.start()
        start = time.monotonic()
        try:
            result: Any = action()
        except Exception as error:  # noqa: BLE001 (a timeout is a finding, not a crash of the probe)
            result = f"{type(error).__name__}: {error}"[:200]
        took = time.monotonic() - start
        done.set()
        for thread in threads:
            thread.join(timeout=seconds)
        return result, took

    def _sample(self, done: threading.Event) -> None:
        while not done.wait(0.05):
            own, tree = self.server.tree_rss_mb()
            self.peak = [max(self.peak[0], own), max(self.peak[1], tree)]

    def _ask(self, done: threading.Event) -> None:
        while not done.is_set():
            start = time.monotonic()
            try:
                ok = httpx.post(f"{self.server.url}/api/ask", json=QUESTION, timeout=30).status_code == 200
            except httpx.HTTPError:
                ok = False
            self.latencies.append(time.monotonic() - start)
            self.failed_questions += not ok
            done.wait(0.2)

    def report(self) -> dict[str, Any]:
        latencies = sorted(self.latencies)
        p95 = latencies[min(int(len(latencies) * 0.95), len(latencies) - 1)] if latencies else None
        return {
            "server_mb_before": round(self.before[0]),
            "server_mb_growth_peak": round(self.peak[0] - self.before[0]),
            "with_children_mb_growth_peak": round(self.peak[1] - self.before[1]),
            "questions_meanwhile": len(latencies),
            "questions_failed": self.failed_questions,
            "question_p95_s": round(p95, 3) if p95 is not None else None,
            "question_median_s": round(statistics.median(latencies), 3) if latencies else None,
        }


# Hostile files ------------------------------------------------------------------------------


def docx_bomb(inflated: int = 1536 << 20) -> bytes:
    """A real DOCX whose word/document.xml inflates to `inflated` bytes (~1.6 MB packed)."""
    import docx

    buffer = io.BytesIO()
    docx.Document().save(buffer)
    out = io.BytesIO()
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bomb:
        for item in source.infolist():
            if item.filename != "word/document.xml":
                bomb.writestr(item, source.read(item))
        head = b'<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>'  # noqa: E501
        with bomb.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(head)
            chunk = b"A" * (1 << 20)
            for _ in range(inflated >> 20):
                member.write(chunk)
            member.write(b"</w:t></w:r></w:p></w:body></w:document>")
    return out.getvalue()


def _pdf(pages: int, size: tuple[float, float], image: bool) -> bytes:
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=size)
    pixel = None
    if image:
        from PIL import Image

        png = io.BytesIO()
        Image.new("L", (8, 8), 128).save(png, format="PNG")
        pixel = ImageReader(io.BytesIO(png.getvalue()))
    for _ in range(pages):
        if pixel is not None:
            pdf.drawImage(pixel, 0, 0, width=size[0], height=size[1])
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def epub_repeated_spine(chapter_bytes: int = 1 << 20, repeats: int = 100) -> bytes:
    """A few KB of EPUB whose spine lists one ~1 MB chapter `repeats` times."""
    paragraph = "<p>" + " ".join(f"word{i % 977}" for i in range(60)) + ".</p>\n"
    chapter = ("<html><body><h1>One</h1>" + paragraph * (chapter_bytes // len(paragraph)) + "</body></html>").encode()
    spine = "".join(f'<itemref idref="c{i}"/>' for i in range(repeats))
    item = '<item id="c{0}" href="ch.xhtml#p{0}" media-type="application/xhtml+xml"/>'
    items = "".join(item.format(i) for i in range(repeats))
    opf = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Spine</dc:title></metadata>'
        f"<manifest>{items}</manifest><spine>{spine}</spine></package>"
    )
    container = (
        '<?xml version="1.0"?><container xmlns="urn:oasis:names:tc:opendocument:xmlns:container" version="1.0">'
        '<rootfiles><rootfile full-path="book.opf" media-type="application/oebps-package+xml"/></rootfiles></container>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as book:
        book.writestr("mimetype", "application/epub+zip")
        book.writestr("META-INF/container.xml", container)
        book.writestr("book.opf", opf)
        book.writestr("ch.xhtml", chapter)
    return out.getvalue()


# Findings -----------------------------------------------------------------------------------


def upload(server: Server, name: str, data: bytes, timeout: float, **headers: str) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/api/documents", files=[("files", (name, data))], headers=headers, timeout=timeout
    )
    try:
        body = response.json()
    except ValueError:
        body = response.text[:200]
    return {"status": response.status_code, "body": _short(body)}


def _short(body: Any) -> Any:
    text = json.dumps(body)
    return body if len(text) <= 300 else text[:300] + "…"


def probe_path(code: Path, index: Path, folder: Path) -> dict[str, Any]:
    secret = folder / "secret.txt"
    secret.write_text(SECRET, encoding="utf-8")
    with serving(code, index) as server:
        config = httpx.get(f"{server.url}/config", timeout=30).json()
        elem = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
        events = config["dependencies"]
        fn_index = next(i for i, event in enumerate(events) if [elem.get(t) for t in event["inputs"]] == ["upload"])
        body = {
            "data": [[{"path": str(secret), "orig_name": "secret.txt", "meta": {"_type": "gradio.FileData"}}]],
            "fn_index": fn_index,
            "session_hash": "probe1",
        }
        joined = httpx.post(f"{server.url}/gradio_api/queue/join", json=body, timeout=30)
        if joined.status_code == 200:
            with httpx.stream("GET", f"{server.url}/gradio_api/queue/data?session_hash=probe1", timeout=120) as stream:
                for line in stream.iter_lines():
                    if "process_completed" in line:
                        break
        hits = httpx.post(f"{server.url}/api/search", json={"question": "launch code swordfish", "k": 3}, timeout=30)
        leaked = any(SECRET in hit["text"] for hit in hits.json()["hits"])
    return {"sent": "queue/join add_files naming a server path", "status": joined.status_code,
            "body": _short(joined.json()), "file_text_served_back": leaked}  # fmt: skip


def probe_upload(code: Path, index: Path, name: str, data: bytes, timeout: float = 300) -> dict[str, Any]:
    with serving(code, index) as server:
        watch = Watch(server)
        result, took = watch.run(lambda: upload(server, name, data, timeout), timeout)
        return {"sent": f"{name}, {len(data):,} bytes", "result": result, "seconds": round(took, 1), **watch.report()}


def probe_scan_blocks_others(code: Path, index: Path) -> dict[str, Any]:
    """A 40-page image-only PDF uploaded, then a small text file: how long the small one waits."""
    scan = _pdf(40, (612, 792), image=True)
    with serving(code, index) as server:
        with ThreadPoolExecutor(2) as pool:
            big = pool.submit(upload, server, "scan.pdf", scan, 600)
            time.sleep(1.0)
            start = time.monotonic()
            small = upload(server, "small.txt", b"A small note about owls.", 600)
            small_s = time.monotonic() - start
            big_result = big.result()
    return {"sent": "40-page image-only PDF, then a 24-byte .txt", "scan": big_result, "small": small,
            "small_upload_s": round(small_s, 1)}  # fmt: skip


def probe_cross_origin(code: Path, index: Path) -> dict[str, Any]:
    with serving(code, index) as server:
        result = upload(server, "planted.txt", b"Planted by another site.", 60, origin="http://evil.example")
        listed = [d["document"] for d in httpx.get(f"{server.url}/api/documents", timeout=30).json()]
    return {"sent": "multipart POST /api/documents with Origin: http://evil.example", **result,
            "planted": "uploads/planted.txt" in listed}  # fmt: skip


def probe_unauthenticated_body(code: Path, index: Path) -> dict[str, Any]:
    with serving(code, index, PASSWORD) as server:
        before = _io(server.process.pid)
        big = b"x" * (200 << 20)
        try:
            status = upload(server, "big.txt", big, 120)["status"]
        except httpx.HTTPError as error:
            status = f"{type(error).__name__}"
        after = _io(server.process.pid)
    return {"sent": "200 MB multipart, no credentials, password set", "status": status,
            "server_received_mb": round((after["rchar"] - before["rchar"]) / (1 << 20), 1),
            "server_stored_mb": round((after["wchar"] - before["wchar"]) / (1 << 20), 1)}  # fmt: skip


def _io(pid: int) -> dict[str, int]:
    """The bytes a process has read (rchar: sockets included) and written (wchar: files it spooled to)."""
    rows = (line.split(":") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return {name: int(value) for name, value in rows if name in ("rchar", "wchar")}


def probe_logins(code: Path, index: Path) -> dict[str, Any]:
    with serving(code, index, PASSWORD) as server:
        wrong = {"authorization": "Basic " + base64.b64encode(b"cite:guess").decode()}
        rotated = [
            httpx.get(f"{server.url}/api/documents", headers={**wrong, "x-forwarded-for": f"203.0.113.{n}"}).status_code
            for n in range(10)
        ]
    with serving(code, index, PASSWORD) as server:
        with ThreadPoolExecutor(20) as pool:
            parallel = list(pool.map(lambda _: httpx.get(f"{server.url}/api/documents", headers=wrong).status_code,
                                     range(20)))  # fmt: skip
    return {"sent": "10 wrong logins, X-Forwarded-For rotated; then 20 wrong logins at once",
            "rotated_statuses": rotated, "parallel_not_limited": parallel.count(401),
            "parallel_limited": parallel.count(429)}  # fmt: skip


def probe_small_refusals(code: Path, index: Path) -> dict[str, Any]:
    with serving(code, index) as server:
        long_name = upload(server, "é" * 250 + ".txt", b"text", 60)
        broken = httpx.post(
            f"{server.url}/api/documents", content=b"nope",
            headers={"content-type": "multipart/form-data; boundary=zz"}, timeout=30,
        )  # fmt: skip
    return {"long_file_name": long_name, "broken_multipart": {"status": broken.status_code, "body": broken.text[:200]}}


def probe_batch(code: Path, index: Path, folder: Path) -> dict[str, Any]:
    lines = [
        json.dumps({"id": "good1", "question": "Who publishes the Monitor?"}),
        json.dumps({"id": "long", "question": "treaty " * 430}),
        "{not json",
        json.dumps({"id": "null", "question": None}),
        json.dumps({"id": "good2", "question": "Gazprom"}),
    ]
    batch = folder / "batch.jsonl"
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "ui.cli", "search", "--batch", str(batch), "--json", "--index", str(index), "--k", "3"],
        cwd=code, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    out = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {"sent": "cite search --batch: 2 good lines, a 3,000-character one, bad JSON, a null question",
            "exit": done.returncode, "lines_out": len(out),
            "answered": [o.get("id") for o in out if "hits" in o], "errors": [o.get("id") for o in out if "error" in o],
            "stderr": done.stderr.strip()[-200:]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose `cite serve` is probed")
    parser.add_argument("--index", type=Path, default=ROOT / ".cite" / "index", help="an index of seeds/")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "probe.json")
    parser.add_argument("--only", nargs="*", help="findings to run (default all)")
    args = parser.parse_args(argv)
    code, index = args.code.resolve(), args.index.resolve()
    with tempfile.TemporaryDirectory(prefix="cite-probe-files-") as tmp:
        folder = Path(tmp)
        findings: dict[str, Callable[[], dict[str, Any]]] = {
            "1-path": lambda: probe_path(code, index, folder),
            "2-docx-bomb": lambda: probe_upload(code, index, "bomb.docx", docx_bomb()),
            "3-huge-pdf-page": lambda: probe_upload(code, index, "page.pdf", _pdf(1, (5000, 5000), image=True)),
            "4a-epub-spine": lambda: probe_upload(code, index, "spine.epub", epub_repeated_spine(), timeout=300),
            "4b-50000-pages": lambda: probe_upload(code, index, "pages.pdf", _pdf(50_000, (200, 200), image=False)),
            "4c-scan-blocks-others": lambda: probe_scan_blocks_others(code, index),
            "6-cross-origin": lambda: probe_cross_origin(code, index),
            "7-unauthenticated-body": lambda: probe_unauthenticated_body(code, index),
            "8-logins": lambda: probe_logins(code, index),
            "8-small-refusals": lambda: probe_small_refusals(code, index),
            "9-batch": lambda: probe_batch(code, index, folder),
        }
        results: dict[str, Any] = {}
        for name, probe in findings.items():
            if args.only and name not in args.only:
                continue
            print(f"probe: {name} ...", flush=True)
            try:
                results[name] = probe()
            except Exception as error:  # noqa: BLE001
                results[name] = {"probe_failed": f"{type(error).__name__}: {error}"[:500]}
            print(json.dumps(results[name]), flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=code, capture_output=True, text=True).stdout
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "code_commit": commit.strip(),
        "machine": _cpu(),
        "command": "python -m bench.probe " + " ".join(argv if argv is not None else sys.argv[1:]),
        "findings": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"probe: wrote {args.out}")
    return 0


def _cpu() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())  # fmt: skip
    flags = Path("/proc/cpuinfo").read_text()
    marks = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f" {f}" in flags]
    return f"{model}, {os.cpu_count()} cores, {'/'.join(marks) or 'no AVX2'}"


if __name__ == "__main__":
    sys.exit(main())
