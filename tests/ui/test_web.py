"""The chat UI driven in a real headless Chromium against a real server and the real model.

Screenshots of each step land in tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
TIMEOUT_MS = 60_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    """Where the server's Eval tab writes (not eval/reports, which the repository keeps)."""
    return tmp_path_factory.mktemp("reports")


@pytest.fixture(scope="module")
def server(seed_index, reports, tmp_path_factory):
    """`cite serve` on loopback over a private copy of the seed index (uploads change it)."""
    root = tmp_path_factory.mktemp("web") / "index"
    shutil.copytree(seed_index, root)
    port = _free_port()
    log = open(root.parent / "server.log", "w")
    command = ["serve", "--index", str(root), "--port", str(port), "--report-dir", str(reports)]
    process = subprocess.Popen(
        [sys.executable, "-m", "cite.ui.cli", *command],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError((root.parent / "server.log").read_text()) from None
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: `make test` installs Debian's chromium package.")
        pytest.skip("Debian's chromium is not installed (make browser)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server)
    page.wait_for_selector("#question textarea")
    yield page
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def ask(page, question: str) -> None:
    page.fill("#question textarea", question)
    page.click("#ask-button")


def test_ask_shows_a_cited_answer_and_opens_the_span_in_its_document(page):
    ask(page, "Which countries let their participation in the CST expire?")
    page.wait_for_selector("#sources .card")
    answer = page.locator("#chat .message").last.inner_text()
    assert "[1]" in answer and "Uzbekistan, Georgia and Azerbaijan" in answer
    card = page.locator("#source-1")
    assert "004_9fdd055095dae421.txt" in card.inner_text()
    assert "dense" in card.inner_text() and "BM25" in card.inner_text()
    assert "let their participation expire" in card.locator("mark").inner_text()
    shot(page, "1-answer-with-sources")

    page.locator("#citation-pick label").first.click()
    current = page.locator("#document mark.current")
    current.wait_for()
    assert "Nine countries signed the original CST in 1993" in current.inner_text()
    # The whole document is shown, not just the passage, and scrolled so the span is visible.
    assert "Islamic militants based in Tajikistan" in page.locator("#doc-text").inner_text()
    assert current.is_visible()
    shot(page, "2-citation-opened-in-document")


def test_abstention_is_plain_and_shows_closest_passages(page):
    ask(page, "How do I bake sourdough bread?")
    page.wait_for_selector("#sources .abstain-note")
    assert "The documents don't say this" in page.locator("#chat .message").last.inner_text()
    assert page.locator("#sources .card").count() >= 1
    shot(page, "3-abstention")


def test_empty_question_shows_an_error_in_the_page(page):
    page.fill("#question textarea", "   ")
    page.click("#ask-button")
    error = page.locator("#ask-error")
    error.wait_for(state="visible")
    assert "The question is empty" in error.inner_text()
    shot(page, "4-empty-question-error")


def test_upload_then_ask_cites_the_new_file_and_shows_html_safely(page, tmp_path):
    upload = tmp_path / "lake_notes.txt"
    upload.write_text(
        "Lake Baikal is the deepest lake in the world, reaching 1,642 metres.\n\n"
        'Researchers wrote <script>window.pwned = 1</script><img src=x onerror="window.pwned = 1"> in a log.',
        encoding="utf-8",
    )
    page.get_by_role("tab", name="Documents").click()
    page.set_input_files("#upload input[type=file]", str(upload))
    page.click("#add-button")
    page.wait_for_selector("#documents-status:has-text('Indexed uploads/lake_notes.txt')")
    assert "uploads/lake_notes.txt" in page.locator("#documents-table").inner_text()
    shot(page, "5-uploaded-document")

    page.get_by_role("tab", name="Ask").click()
    ask(page, "How deep is Lake Baikal?")
    page.wait_for_selector("#source-1")
    assert "uploads/lake_notes.txt" in page.locator("#source-1").inner_text()
    assert "1,642 metres" in page.locator("#chat .message").last.inner_text()

    ask(page, "What did researchers write in the log?")
    page.wait_for_selector("#sources:has-text('window.pwned')")
    assert page.evaluate("window.pwned") is None  # shown as text, never run
    shot(page, "6-upload-cited-html-escaped")


def test_bad_upload_is_reported_and_nothing_is_lost(page, tmp_path):
    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"\x00\x01\x02 binary")
    page.get_by_role("tab", name="Documents").click()
    page.wait_for_selector("#documents-table:has-text('004_9fdd055095dae421.txt')")
    page.set_input_files("#upload input[type=file]", str(junk))
    page.click("#add-button")
    page.wait_for_selector("#documents-status:has-text('Skipped')")
    assert "looks binary" in page.locator("#documents-status").inner_text()
    table = page.locator("#documents-table").inner_text()
    assert "junk.txt" not in table
    assert all(f"00{i}_" in table for i in range(5))
    shot(page, "7-bad-upload")


def test_search_tab_finds_the_passage_that_states_a_claim(page):
    page.get_by_role("tab", name="Search").click()
    page.fill("#search-query textarea", "Nine countries signed the original treaty")
    page.click("#search-button")
    page.wait_for_selector("#search-results .card")
    first = page.locator("#search-results .card").first.inner_text()
    assert "004_9fdd055095dae421.txt" in first and "Nine countries signed" in first
    page.locator("#result-pick label").first.click()
    page.wait_for_selector("#search-document mark.current")
    shot(page, "8-search")


def test_eval_tab_runs_the_seed_questions_and_plots(page, reports):
    page.get_by_role("tab", name="Eval").click()
    page.click("#eval-tune input")
    page.click("#eval-button")
    page.wait_for_selector("#eval-table:has-text('held out')", timeout=180_000)
    table = page.locator("#eval-table").inner_text()
    assert "hit@1" in table and "answered" in table and "hybrid" in table
    assert "tuning fusion on 74 questions" in table and "tuning, held out" in table
    assert ("Kept the current settings" in table) != ("Saved" in table)
    assert f"Report: {reports / 'seeds.md'}" in table and (reports / "seeds.png").is_file()
    page.wait_for_selector("#eval-plot img")
    shot(page, "9-eval")


def test_http_api_answers_programs(server):
    from gradio_client import Client

    client = Client(server, verbose=False)
    answer = client.predict("Who publishes the Monitor?", [], api_name="/ask")
    assert "Jamestown Foundation" in answer["answer"]
    assert {"citations", "claims", "hits", "confidence", "abstained"} <= set(answer)
    hits = client.predict("Gazprom", 3, api_name="/search")["hits"]
    assert len(hits) == 3 and hits[0]["rank"] == 1
    names = [row["document"] for row in client.predict(api_name="/documents")]
    assert "004_9fdd055095dae421.txt" in names


def test_missing_index_is_explained_in_the_page(browser, tmp_path):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cite.ui.cli", "serve", "--index", str(tmp_path / "none"), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        deadline = time.time() + 120
        while True:
            try:
                page.goto(f"http://127.0.0.1:{port}/")
                break
            except Exception:  # noqa: BLE001 (not listening yet)
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        page.wait_for_selector("#question textarea")
        ask(page, "Who publishes the Monitor?")
        error = page.locator("#ask-error")
        error.wait_for(state="visible")
        assert "No index" in error.inner_text() and "Documents tab" in error.inner_text()
        shot(page, "10-missing-index")
        context.close()
    finally:
        process.terminate()
        process.wait(timeout=20)


class Beacon:
    """An HTTP server on loopback that counts the requests a page makes to it."""

    def __init__(self) -> None:
        import http.server

        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_a_quoted_document_makes_the_browser_fetch_nothing(page, server):
    """Issue #26, finding 5: Markdown in a document (an image, HTML, a bare URL) was rendered in
    the chat when quoted, and the browser fetched the image: a beacon that a question was asked."""
    import httpx

    beacon = Beacon()
    text = (
        f"The lighthouse keeper is Ansel Brightwater ![portrait]({beacon.url}/markdown.png) who lives on "
        f'<img src="{beacon.url}/html.png"> Gull Island [home]({beacon.url}/link) near {beacon.url}/bare today.'
    )
    added = httpx.post(f"{server}api/documents", files=[("files", ("keeper.txt", text.encode()))], timeout=120)
    assert added.json()["added"] == ["uploads/keeper.txt"]
    try:
        ask(page, "Who is the lighthouse keeper of Gull Island?")
        page.wait_for_selector("#source-1")
        answer = page.locator("#chat .message").last
        assert f"![portrait]({beacon.url}/markdown.png)" in answer.inner_text()
        assert answer.locator("img").count() == 0 and answer.locator("a").count() == 0
        shot(page, "11-markdown-shown-as-text")
        page.wait_for_timeout(1000)  # an image the page did request would have arrived by now
        assert beacon.hits == []
    finally:
        beacon.close()
        httpx.post(f"{server}api/documents/remove", json={"names": ["uploads/keeper.txt"]}, timeout=120)
