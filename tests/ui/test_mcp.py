"""The MCP server through the SDK's own client: over stdio (`python -m ui.mcp_server`, the real
model, slow) and streamable HTTP (mounted at /mcp beside the JSON API and the UI, as `cite serve`
would, on a real socket); its checks and pages in process over the fake embedder (fast)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from cite.core.config import SplitSettings
from cite.core.text import normalised_text
from cite.core.types import Document, Heading
from cite.indexer.build import build_index
from cite.ui import mcp_server
from cite.ui.api import AnswerOut, HitsOut
from cite.ui.backend import Backend
from cite.ui.mcp_server import ReadOut, build_mcp, mount_mcp
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from tests.helpers import ROOT
from tests.ui.helpers import CASPIAN, live_server

SEED_QUESTION = "Who proposed the creation of a CSO joint command?"
PASSWORD = "correct horse 7"


@dataclass
class Connected:
    """A client connected for the whole module, driven from the (sync) tests through a portal."""

    portal: BlockingPortal
    client: Client

    def call(self, tool: str, **arguments: Any) -> CallToolResult:
        return self.portal.call(self.client.call_tool, tool, arguments)

    def tools(self) -> dict[str, Any]:
        return {tool.name: tool for tool in self.portal.call(self.client.list_tools).tools}


@contextmanager
def connected(transport: Any) -> Iterator[Connected]:
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(Client(transport)) as client:
        yield Connected(portal, client)


def error_of(result: CallToolResult) -> str:
    assert result.is_error, result
    return result.content[0].text


# Over both transports, the real model ------------------------------------------------------


@pytest.fixture(scope="module", params=["stdio", "http"])
def served(request, seed_index, real_embedder, tmp_path_factory) -> Iterator[Connected]:
    if request.param == "stdio":
        with _stdio(seed_index, tmp_path_factory.mktemp("mcp-stdio")) as client:
            yield client
    else:
        with _http(Backend(seed_index, real_embedder, reports=tmp_path_factory.mktemp("reports"))) as client:
            yield client


@contextmanager
def _stdio(index, folder) -> Iterator[Connected]:
    """`python -m ui.mcp_server --index` launched by the SDK's stdio client (what `cite mcp` runs)."""
    env = {name: value for name, value in os.environ.items() if name.startswith(("HF_", "TRANSFORMERS_", "CITE_"))}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "cite.ui.mcp_server", "--index", str(index)], env=env, cwd=str(ROOT)
    )
    with open(folder / "stderr.log", "w+", encoding="utf-8") as errlog:
        with connected(stdio_client(params, errlog=errlog)) as client:
            yield client
        errlog.seek(0)
        assert "Traceback" not in errlog.read()


@contextmanager
def _http(backend: Backend) -> Iterator[Connected]:
    """`cite serve`'s app with the MCP server mounted (the wiring `server_app` gets), behind the
    guard of a loopback server with a password, on a real socket; the SDK's streamable HTTP
    client at /mcp, with the password as its Bearer token."""
    from cite.ui.api import create_api, mount_ui
    from cite.ui.guard import Door, Guard
    from cite.ui.web import CSS, build_app

    app = create_api(backend)
    mount_mcp(app, backend)
    mount_ui(app, build_app(backend).queue(), PASSWORD, CSS, allowed_paths=[str(backend.reports)])
    with live_server(Guard(app, Door(PASSWORD, local_only=True))) as url:
        # The page and the JSON API still answer beside it; /mcp wants the password.
        assert httpx.get(f"{url}/").status_code == 200
        assert httpx.get(f"{url}/api/documents", auth=("cite", PASSWORD)).status_code == 200
        assert httpx.post(f"{url}/mcp", json={}).status_code == 401
        with connected(_bearer(f"{url}/mcp", PASSWORD)) as client:
            yield client


@asynccontextmanager
async def _bearer(url: str, token: str) -> AsyncIterator[Any]:
    """The SDK's streamable HTTP transport, sending `Authorization: Bearer <token>`."""
    async with httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            yield streams


@pytest.fixture(scope="module")
def documents(seed_engine) -> dict[str, Document]:
    return seed_engine.snapshot().index.documents


@pytest.mark.slow
def test_the_three_tools_are_listed_with_what_they_are_for(served):
    tools = served.tools()
    assert set(tools) == {"search", "ask", "read"}
    assert "where do the documents say" in tools["search"].description
    assert "with citations" in tools["ask"].description
    assert "around a citation" in tools["read"].description
    assert all(tool.annotations.read_only_hint for tool in tools.values())
    assert tools["search"].input_schema["properties"]["k"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 5,
        "description": "how many passages",
        "title": "K",
    }


@pytest.mark.slow
def test_search_gives_the_clis_hits_each_at_its_place(served, documents):
    result = served.call("search", query=SEED_QUESTION, k=4)
    assert not result.is_error, result
    hits = HitsOut.model_validate(result.structured_content).model_dump(exclude_unset=True)["hits"]
    assert [hit["rank"] for hit in hits] == [1, 2, 3, 4]
    for hit in hits:
        original = documents[hit["doc"]].text[hit["start"] : hit["end"]]
        assert hit["text"] == normalised_text(original).replace("\n\n", " ")  # the passage, lines unwrapped
        read = served.call("read", doc=hit["doc"], start=hit["start"], end=hit["end"])
        assert read.structured_content["text"] == original
    assert result.content[0].text.startswith(f"1. {hits[0]['doc']}")


@pytest.mark.slow
def test_ask_gives_the_clis_answer_whose_quotes_are_exact(served, documents):
    result = served.call("ask", question=SEED_QUESTION)
    assert not result.is_error, result
    answer = AnswerOut.model_validate(result.structured_content)
    assert not answer.abstained and "Sergei Ivanov" in answer.answer
    assert answer.citations
    for citation in answer.citations:
        assert documents[citation.doc].text[citation.start : citation.end] == citation.quote
        assert f"[{citation.n}]" in answer.answer
    text = result.content[0].text
    assert text.startswith(answer.answer) and "\nSources:\n[1] " in text


@pytest.mark.slow
def test_a_follow_up_is_answered_with_its_history(served):
    result = served.call("ask", question="Who proposed it?", history=["What is the CSO joint command?"])
    assert not result.is_error, result
    assert set(result.structured_content) == {"answer", "abstained", "confidence", "citations", "claims", "hits"}


@pytest.mark.slow
def test_read_gives_the_exact_span(served, documents):
    doc = sorted(documents)[0]
    result = served.call("read", doc=doc, start=100, end=400)
    assert not result.is_error, result
    read = ReadOut.model_validate(result.structured_content)
    assert read.text == documents[doc].text[100:400]
    assert (read.doc, read.start, read.end, read.document_chars) == (doc, 100, 400, len(documents[doc].text))
    assert result.content[0].text.endswith(read.text)


@pytest.mark.slow
def test_bad_values_are_tool_errors_with_the_one_line_message(served):
    assert error_of(served.call("search", query="ivanov", k=-3)) == "k must be a whole number from 1 to 100, not -3."
    assert error_of(served.call("search", query="ivanov", k=500)) == "k must be a whole number from 1 to 100, not 500."
    message = error_of(served.call("read", doc="nowhere.txt", start=0, end=10))
    assert message == "No document named 'nowhere.txt' is indexed; use a `doc` that search or ask returned."


# Each check in process, the fake embedder (fast) -----------------------------------------

MANUAL = Document(
    doc="manual.txt",
    text="Setup\nInstall the tool first. Then run it.\nUsage\nCall it with a file. It reads the file.\n",
    pages=(0, 30, 60),
    headings=(Heading(0, 5, 1), Heading(43, 48, 2)),
)


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Iterator[tuple[Connected, Backend]]:
    """An in-process client of a server over a document with pages and headings."""
    from tests.helpers import FakeEmbedder

    folder = tmp_path_factory.mktemp("mcp-local")
    embedder = FakeEmbedder()
    build_index([MANUAL], folder / "index", embedder, SplitSettings())
    backend = Backend(folder / "index", embedder, reports=folder / "reports")
    with connected(build_mcp(backend)) as client:
        yield client, backend


def test_read_gives_the_pages_and_section_of_a_span(local):
    client, _ = local
    result = client.call("read", doc="manual.txt", start=20, end=70)  # from page 1 under Setup into Usage
    assert result.structured_content == {
        "doc": "manual.txt",
        "start": 20,
        "end": 70,
        "page": 1,
        "last_page": 3,
        "section": "Setup",
        "text": MANUAL.text[20:70],
        "document_chars": 89,
    }
    assert result.content[0].text == f"manual.txt pp. 1–3, §Setup [20-70]\n\n{MANUAL.text[20:70]}"
    inside = client.call("read", doc="manual.txt", start=50, end=60).structured_content
    assert (inside["page"], inside["last_page"], inside["section"]) == (2, 2, "Setup > Usage")


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("search", {"query": "install", "k": 0}, "k must be a whole number from 1 to 100, not 0."),
        ("search", {"query": "install", "k": "five"}, "k must be a whole number from 1 to 100, not 'five'."),
        ("search", {"query": "install", "k": True}, "k must be a whole number from 1 to 100, not true/false."),
        ("search", {"query": 7}, "The query must be text, not 7."),
        ("search", {"query": "x" * 20_001}, "The query is 20,001 characters long; search with at most 20,000"),
        ("ask", {"question": "x" * 2_001}, "The question is 2,001 characters long; ask in at most 2,000"),
        ("ask", {"question": "install?", "history": "install"}, "The history must be a list of questions"),
        ("read", {"doc": "", "start": 0, "end": 5}, "doc must be a document's name"),
        ("read", {"doc": "manual.txt", "start": -1, "end": 5}, "start must be a character offset"),
        ("read", {"doc": "manual.txt", "start": 0, "end": "5"}, "end must be a character offset"),
        ("read", {"doc": "manual.txt", "start": 9, "end": 9}, "end must be greater than start: 9 to 9 is empty."),
        ("read", {"doc": "manual.txt", "start": 0, "end": 20_001}, "0 to 20,001 is 20,001 characters; read at most"),
        ("read", {"doc": "manual.txt", "start": 80, "end": 99}, "manual.txt has 89 characters; read a span within"),
        ("read", {"doc": "other.txt", "start": 0, "end": 5}, "No document named 'other.txt' is indexed"),
    ],
)
def test_each_bad_value_is_one_line_naming_what_is_allowed(local, tool, arguments, message):
    client, _ = local
    error = error_of(client.call(tool, **arguments))
    assert error.startswith(message) and "\n" not in error


def test_search_and_ask_render_text_for_clients_that_show_only_text(local):
    client, _ = local
    hits = client.call("search", query="Install the tool", k=2)
    assert hits.content[0].text.splitlines()[0].startswith("1. manual.txt p. 1, §Setup [")
    answer = client.call("ask", question="What do I install first?").content[0].text
    assert "Sources:\n[1] manual.txt" in answer or answer.startswith("The documents don't answer this")


def test_mounted_it_answers_each_time_its_app_starts(local):
    """The SDK's session manager runs once in its life; a test client starts the app each time."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    _, backend = local
    app = FastAPI()
    mount_mcp(app, backend)
    accept = {"accept": "application/json, text/event-stream"}
    arguments = {"doc": "manual.txt", "start": 0, "end": 5}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "read", "arguments": arguments}}
    for _ in range(2):
        with TestClient(app) as client:
            answered = client.post("/mcp", json=call, headers=accept)
            assert answered.json()["result"]["structuredContent"]["text"] == "Setup"
            assert client.get("/mcp", headers=accept).status_code == 405  # no stream to hold open
    assert TestClient(app).post("/mcp", json=call, headers=accept).status_code == 503  # not started


def test_no_index_is_an_error_that_names_no_server_folder(tmp_path, fake_embedder):
    backend = Backend(tmp_path / "index", fake_embedder, reports=tmp_path / "reports")
    with connected(build_mcp(backend)) as client:
        message = error_of(client.call("search", query=CASPIAN))
    assert message.startswith("No index yet") and str(tmp_path) not in message


def test_stdio_without_an_index_refuses_before_serving(tmp_path, capsys):
    assert mcp_server.main(["--index", str(tmp_path / "none")]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("cite: error: No index at ")
