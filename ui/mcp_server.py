"""cite as an MCP server: agents (Claude Desktop, Cursor, any MCP client) search, ask and read the index.

Three read-only tools, each a door like the JSON API's routes, with the same contract:
    search(query, k=5)               -> `cite search --json`'s {"hits": [...]}
    ask(question, history=[])        -> `cite ask --json`'s answer (each citation's quote is text[start:end])
    read(doc, start, end)            -> the document's original text[start:end], with its pages and section
Each result carries that JSON as structured content and a short text rendering for clients that
show text only. Every argument goes through `ui.validate` first, so a refusal is the same one-line
message as at every other door, returned as a tool error (never a traceback or a server path).

Two transports:
- stdio (`run_stdio`, `python -m ui.mcp_server --index DIR`, the lead's `cite mcp`): what desktop
  clients launch. stdout is the protocol, so logs and any stray output go to stderr.
- streamable HTTP at /mcp (`mount_mcp` on `cite serve`'s FastAPI app, or `mcp_http_app` alone):
  stateless, JSON responses (no sessions kept between requests, no server-sent stream), so it needs
  no state beyond the session manager's task group, which the parent app's lifespan runs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

from cite.core.errors import CiteError, IndexMissing
from cite.core.layout import SECTION_SEPARATOR, heading_title, page_at
from cite.core.serialize import answer_json, hits_json
from cite.core.store import DEFAULT_INDEX, current_version
from cite.core.types import Answer, Document, Hit
from cite.ui import validate
from cite.ui.api import AnswerOut, HitsOut
from cite.ui.backend import Backend
from cite.ui.guard import MAX_JSON_BYTES
from cite.ui.render import place
from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

SEARCH_K = 5  # hits an agent gets by default: enough to compare, few enough to read
MAX_READ_CHARS = 20_000  # one read: a few pages around a citation, not a whole book
QUOTE_CHARS = 300  # a quote or passage in the text rendering (the structured content has it whole)
MCP_PATH = "/mcp"

INSTRUCTIONS = (
    "cite answers from the user's own documents (an offline index) and cites exact places in them. "
    "Use `search` to find where the documents say something, `ask` for an answer with citations, and "
    "`read` to see the text around a citation or hit. Every citation's quote is its document's "
    "text[start:end], character for character: quote it as given, with its document and page."
)
SEARCH_HELP = (
    "Find where the indexed documents say something: the k passages that best state `query`, best first, "
    "each with its document (`doc`), character span [`start`, `end`), page, section and scores. Use it for "
    '"where do the documents say X", to find the source of a quote or claim, or to gather passages before '
    "answering yourself. `query` may be a phrase, a question, a claim or a pasted passage. A hit's `text` is "
    "the passage with its line breaks unwrapped; `read` gives the original text at `doc`, `start`, `end`."
)
ASK_HELP = (
    "Answer a question from the indexed documents, with citations: each [n] in `answer` is backed by "
    "citation n, whose `quote` is exactly its document's text[start:end], with page and section. Use it for "
    "a question the user wants answered with evidence from their documents. When the documents do not answer "
    "it, `abstained` is true and `answer` null (the closest passages are still in `hits`): say so rather than "
    'guess. For a follow-up ("and who opposed it?"), pass the user\'s earlier questions as `history`.'
)
READ_HELP = (
    "Read a document's original text [start:end] (character offsets, end exclusive, at most "
    f"{MAX_READ_CHARS:,} characters) with the page it starts on, the page it ends on, and its section. Use it "
    "to see the text around a citation or search hit: take its `doc`, `start` and `end` and widen them (e.g. "
    "start - 1000, end + 1000, kept within the document's `document_chars`)."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def _schema(json_schema: dict[str, Any], description: str, **extra: Any) -> Any:
    """An argument the SDK passes through as it came (ui.validate checks it, with cite's own message),
    advertised to the client with `json_schema`."""
    return Annotated[Any, WithJsonSchema(json_schema), Field(description=description, json_schema_extra=extra or None)]


QueryArg = _schema(
    {"type": "string", "maxLength": validate.MAX_QUERY_CHARS},
    "what to find: a phrase, a question, a claim or a pasted passage",
)
KArg = _schema({"type": "integer", "minimum": validate.K_MIN, "maximum": validate.K_MAX}, "how many passages")
QuestionArg = _schema({"type": "string", "maxLength": validate.MAX_QUESTION_CHARS}, "the question to answer")
HistoryArg = _schema(
    {"type": "array", "items": {"type": "string"}, "maxItems": validate.MAX_TURNS},
    "the user's earlier questions in this conversation, oldest first",
    default=[],
)
DocArg = _schema({"type": "string"}, "a document's name, as a hit's or citation's `doc` gives it")
StartArg = _schema({"type": "integer", "minimum": 0}, "the first character's offset")
EndArg = _schema({"type": "integer", "minimum": 1}, "the offset just past the last character")


class ReadOut(BaseModel):
    """The `read` tool's structured content."""

    model_config = ConfigDict(extra="forbid")
    doc: str
    start: int
    end: int
    page: int | None = Field(description="the physical page `start` is on (null: the format has no pages)")
    last_page: int | None = Field(description="the page the span ends on (page, for a span on one page)")
    section: str | None = Field(description='the headings the span starts under, "Chapter > Section"')
    text: str = Field(description="the document's original text[start:end], character for character")
    document_chars: int = Field(description="the document's length: offsets run from 0 to this")


# The tools, as plain functions of a Backend (callable and testable without a client) ------


def search_result(backend: Backend, query: Any, k: Any = SEARCH_K) -> CallToolResult:
    """`cite search --json`'s hits for `query`, and their places as text."""
    query, k = validate.query(query), validate.k(k)
    hits = backend.engine().search(query, k)
    return CallToolResult(content=_text(format_hits(hits)), structured_content={"hits": hits_json(hits)})


def ask_result(backend: Backend, question: Any, history: Any = None) -> CallToolResult:
    """`cite ask --json`'s answer to `question` (a follow-up to the questions in `history`), and as text."""
    question, earlier = validate.question(question), validate.history(history)
    answer = backend.engine().ask(question, validate.DEFAULT_K, history=earlier)
    return CallToolResult(content=_text(format_answer(answer)), structured_content=answer_json(answer))


def read_result(backend: Backend, doc: Any, start: Any, end: Any) -> CallToolResult:
    """The original text of `doc` [start:end] with its pages and section."""
    doc, start, end = read_span(doc, start, end)
    document = backend.engine().snapshot().index.documents.get(doc)
    if document is None:
        raise validate.BadInput(
            f"No document named {_clip(doc, 80)!r} is indexed; use a `doc` that search or ask returned."
        )
    chars = len(document.text)
    if end > chars:
        raise validate.BadInput(
            f"{_clip(doc, 80)} has {chars:,} characters; read a span within 0 to {chars:,}, not {start:,} to {end:,}."
        )
    page, last_page = page_at(document, start), page_at(document, end - 1)
    section = section_at(document, start)
    read = ReadOut(
        doc=doc,
        start=start,
        end=end,
        page=page,
        last_page=last_page,
        section=section or None,
        text=document.text[start:end],
        document_chars=chars,
    )
    heading = place(doc, start, end, page, section, last_page)
    return CallToolResult(content=_text(f"{heading}\n\n{read.text}"), structured_content=read.model_dump())


def read_span(doc: Any, start: Any, end: Any) -> tuple[str, int, int]:
    """A span to read: a document name and offsets with 0 <= start < end, at most MAX_READ_CHARS apart.

    Raises:
        BadInput: for anything else (whether it lies inside the document is `read_result`'s check).
    """
    if not isinstance(doc, str) or not doc:
        raise validate.BadInput("doc must be a document's name, as a hit's or citation's `doc` gives it.")
    offsets = []
    for name, value in (("start", start), ("end", end)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise validate.BadInput(f"{name} must be a character offset (a whole number from 0), not {value!r}.")
        offsets.append(value)
    start, end = offsets
    if end <= start:
        raise validate.BadInput(f"end must be greater than start: {start:,} to {end:,} is empty.")
    if end - start > MAX_READ_CHARS:
        raise validate.BadInput(
            f"{start:,} to {end:,} is {end - start:,} characters; read at most {MAX_READ_CHARS:,} at a time."
        )
    return doc, start, end


def section_at(document: Document, offset: int) -> str:
    """The path of the headings `offset` sits under (as a passage there carries it); "" before the first."""
    path: list[tuple[int, str]] = []
    for heading in document.headings:
        if heading.start > offset:
            break
        path = [(level, title) for level, title in path if level < heading.level]
        path.append((heading.level, heading_title(document, heading.start, heading.end)))
    return SECTION_SEPARATOR.join(title for _, title in path)


# Text for clients that show text only ------------------------------------------------------


def format_hits(hits: list[Hit]) -> str:
    """Each hit's place (what `read` takes), then its passage, clipped."""
    if not hits:
        return "No passage matches."
    lines = []
    for rank, hit in enumerate(hits, start=1):
        p = hit.passage
        lines.append(f"{rank}. {place(p.doc, p.start, p.end, p.page, p.section)}  (score {hit.score:.3f})")
        lines.append(f"   {_clip(p.text)}")
    return "\n".join(lines)


def format_answer(answer: Answer) -> str:
    """The answer with its [n] markers, then each source: its place and its quote."""
    if answer.abstained:
        closest = format_hits(list(answer.hits[:3]))
        return f"The documents don't answer this (confidence {answer.confidence:.2f}). Closest passages:\n{closest}"
    lines = [answer.text or "", "", "Sources:"]
    for c in answer.citations:
        lines.append(f'[{c.n}] {place(c.doc, c.start, c.end, c.page, c.section, c.end_page)}: "{_clip(c.quote)}"')
    for claim in answer.claims:
        if not claim.supported:
            lines.append(f"Not supported by its citation (support {claim.support:.2f}): {_clip(claim.text)}")
    lines.append(f"confidence {answer.confidence:.2f}")
    return "\n".join(lines)


def _clip(text: str, limit: int = QUOTE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _text(text: str) -> list[TextContent]:
    return [TextContent(type="text", text=text)]


# The server ------------------------------------------------------------------------------


def build_mcp(backend: Backend) -> MCPServer:
    """The MCP server over `backend`'s index: the tools `search`, `ask` and `read`."""
    with _logging_left_alone():
        server = MCPServer("cite", instructions=INSTRUCTIONS)

    # The SDK runs these (sync) functions in worker threads, reads their arguments' schemas from
    # the annotations, and checks the structured content against the output model's schema.
    def search(query: QueryArg, k: KArg = SEARCH_K) -> Annotated[CallToolResult, HitsOut]:
        return _refusing(backend, search_result, query, k)

    def ask(question: QuestionArg, history: HistoryArg = None) -> Annotated[CallToolResult, AnswerOut]:
        return _refusing(backend, ask_result, question, history)

    def read(doc: DocArg, start: StartArg, end: EndArg) -> Annotated[CallToolResult, ReadOut]:
        return _refusing(backend, read_result, doc, start, end)

    for tool, title, help_text in (
        (search, "Search the documents", SEARCH_HELP),
        (ask, "Ask the documents", ASK_HELP),
        (read, "Read a document", READ_HELP),
    ):
        server.add_tool(tool, title=title, description=help_text, annotations=READ_ONLY, structured_output=True)
    return server


@contextlib.contextmanager
def _logging_left_alone() -> Iterator[None]:
    """MCPServer() calls logging.basicConfig, which would give the root logger a handler and a
    level in `cite serve`; logging is the program's to set up (`run_stdio` does), and basicConfig
    does nothing while the root logger has a handler."""
    root, placeholder = logging.getLogger(), logging.NullHandler()
    root.addHandler(placeholder)
    try:
        yield
    finally:
        root.removeHandler(placeholder)


def _refusing(backend: Backend, tool: Callable[..., CallToolResult], *args: Any) -> CallToolResult:
    """`tool(backend, *args)`, a CiteError made its error result: the one-line message, naming no
    server folder. Any other exception reaches the SDK, which logs it and tells the client only
    that the tool failed."""
    try:
        return tool(backend, *args)
    except CiteError as error:
        return CallToolResult(content=_text(backend.public_message(str(error))), is_error=True)


def mcp_http_app(backend: Backend, server: MCPServer | None = None) -> Starlette:
    """The tools over streamable HTTP at /mcp, stateless with JSON responses: an app of its own,
    whose lifespan runs the SDK's session manager (`mount_mcp` puts the tools on another app).

    Args:
        server: the tools (None: `build_mcp(backend)`).
    """
    return (server or build_mcp(backend)).streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        max_request_body_size=MAX_JSON_BYTES,  # the JSON API's limit: a full chat history fits
        # ui.guard checks hosts (DNS rebinding) and origins in front of every route; the SDK's
        # own check would refuse `cite serve --expose` by its host name.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )


def mount_mcp(app: FastAPI, backend: Backend) -> None:
    """Serves the tools at /mcp on `app` (`cite serve`'s), ahead of its other routes, with the
    SDK's session manager run by `app`'s lifespan.

    Call it before or after mounting the UI: its route goes first either way (the UI's mount
    at / would take every path), and Gradio's mount keeps the lifespan it finds.
    """
    endpoint = _Endpoint(backend)
    app.router.routes.insert(0, Route(MCP_PATH, endpoint))
    outer = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(parent: Any) -> AsyncIterator[Any]:
        async with endpoint.running(), outer(parent) as state:
            yield state

    app.router.lifespan_context = lifespan


class _Endpoint:
    """/mcp on another app: the SDK's app of that app's running lifespan. The SDK's session
    manager runs once in its life, and an app may be started more than once (a test client each)."""

    def __init__(self, backend: Backend) -> None:
        self.backend, self.server = backend, build_mcp(backend)
        self.current: Starlette | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        served = mcp_http_app(self.backend, self.server)
        async with served.router.lifespan_context(served):
            self.current = served
            try:
                yield
            finally:
                self.current = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.current is None:
            refusal = JSONResponse({"error": "The MCP server starts with the app's lifespan; it is not running."}, 503)
            return await refusal(scope, receive, send)
        if scope["method"] != "POST":
            # Stateless: no stream for the server to call the client on (a GET would hold an
            # empty one open), no session to end; the protocol's answer to both is 405.
            refusal = JSONResponse({"error": "POST MCP messages here."}, 405, headers={"Allow": "POST"})
            return await refusal(scope, receive, send)
        await self.current(scope, receive, send)


def run_stdio(root: Path, backend: Backend | None = None) -> None:
    """Serves the tools over stdin/stdout until the client closes them, over the index at `root`.

    Raises:
        IndexMissing: no index at `root` (said before serving, so the client's log shows why).
    """
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="cite mcp: %(levelname)s %(message)s")
    if current_version(Path(root)) is None:
        raise IndexMissing(f"No index at {root}; build one with `cite index PATH --index {root}`.")
    backend = backend or Backend(Path(root))
    with contextlib.redirect_stdout(sys.stderr):  # stdout is the protocol: nothing else may write there
        backend.engine().snapshot()  # the models and the index load before the client's first call
    build_mcp(backend).run("stdio")


def main(argv: list[str] | None = None) -> int:
    """`python -m ui.mcp_server --index DIR`: `run_stdio`, a refusal as one line on stderr."""
    parser = argparse.ArgumentParser(prog="cite mcp", description="Serve cite's tools to an MCP client over stdio.")
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX, help=f"index folder (default {DEFAULT_INDEX})")
    args = parser.parse_args(argv)
    try:
        run_stdio(args.index)
    except CiteError as error:
        print(f"cite: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
