"""A plain JSON API beside the chat UI, on the same server: one request per call.

    POST /api/ask        {"question", "history"?, "k"?}  -> `cite ask --json`'s answer
    POST /api/search     {"question", "k"?}              -> `cite search --json`'s {"hits"}
    GET  /api/documents                                  -> what is indexed
    POST /api/documents  multipart files                 -> indexed (queued behind other changes)
    POST /api/documents/remove {"names"}                 -> removed (queued likewise)

The schema is at /openapi.json (browsable at /api/docs). Every value is checked by
`ui.validate`, as in the UI; a refusal is `{"error": message}` with 422 (a bad value), 400
(the index cannot do it), 401 (a password is set: HTTP basic, user `cite`), 403 (sent from a
page of another site), 413 (too big) or 429 (too many failed logins); `ui.guard` checks the
logins, origins and sizes before a route runs. The Gradio UI is mounted at / with the same
password (its own login form), its logins counted with the API's.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from cite.core.errors import BadQuestion, CiteError, IndexMissing
from cite.ui import validate
from cite.ui.backend import Backend
from cite.ui.guard import USER
from cite.ui.openai_api import openai_router
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

SERVER_FAULT = "Something went wrong on the server (its log has the details); try again."
# Gradio keeps every session's state (a copy of each component's config, ~0.1 MB here) until
# its 10000th newer session: every call of its HTTP API is a new session, so a busy server grew
# ~0.15 MB/s under the soak. The least recently used session beyond this many is forgotten (a
# browser tab idle that long loses its last answer's citation panel, not its chat).
UI_SESSIONS = 256


# Schema -----------------------------------------------------------------------------------


class Message(BaseModel):
    role: Literal["user", "assistant", "system"]
    content: str | list[dict[str, Any]] = Field(description='text, or Gradio\'s [{"type": "text", "text"}] parts')


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(description=f"at most {validate.MAX_QUESTION_CHARS:,} characters once cleaned")
    history: list[str | Message] | None = Field(
        None,
        description=f"earlier questions (or chat messages), oldest first; at most {validate.MAX_TURNS} messages "
        f"of {validate.MAX_TURN_CHARS:,} characters",
    )
    k: int = Field(validate.DEFAULT_K, ge=validate.K_MIN, le=validate.K_MAX, description="passages retrieved")

    _question = field_validator("question", mode="before")(lambda value: validate.question(value))
    _k = field_validator("k", mode="before")(lambda value: validate.k(value))
    _history = field_validator("history", mode="before")(lambda value: validate.history(value))


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        description=f"a phrase, a claim or a pasted passage: at most {validate.MAX_QUERY_CHARS:,} characters, cleaned"
    )
    k: int = Field(validate.DEFAULT_K, ge=validate.K_MIN, le=validate.K_MAX, description="passages returned")

    _question = field_validator("question", mode="before")(lambda value: validate.query(value))
    _k = field_validator("k", mode="before")(lambda value: validate.k(value))


class RemoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: list[str] = Field(description="indexed document names, as GET /api/documents lists them")

    _names = field_validator("names", mode="before")(lambda value: validate.document_names(value))


class Span(BaseModel):
    start: int
    end: int


class HitOut(BaseModel):
    """core.serialize.hit_json's shape."""

    model_config = ConfigDict(extra="forbid")
    rank: int
    doc: str
    start: int
    end: int
    page: int | None
    section: str | None
    text: str
    score: float
    scores: dict[str, float]
    sentence: Span | None = None


class CitationOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int
    doc: str
    start: int = Field(description="the quote is the document's original text [start:end]")
    end: int
    page: int | None = Field(description="the physical page the quote starts on")
    last_page: int | None = Field(description="the page it ends on: page, or the next when it runs over a page break")
    section: str | None
    quote: str


class ClaimOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    citations: list[int]
    supported: bool
    support: float


class AnswerOut(BaseModel):
    """core.serialize.answer_json's shape (`cite ask --json`)."""

    model_config = ConfigDict(extra="forbid")
    answer: str | None = Field(description="null when it abstained")
    abstained: bool
    confidence: float
    citations: list[CitationOut]
    claims: list[ClaimOut]
    hits: list[HitOut]


class HitsOut(BaseModel):
    """`cite search --json`'s shape."""

    model_config = ConfigDict(extra="forbid")
    hits: list[HitOut]


class DocumentOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document: str
    title: str
    passages: int
    characters: str
    indexed: str
    source: str


class Added(BaseModel):
    added: list[str] = Field(description="documents added or changed, as uploads/<name>")
    skipped: list[str] = Field(description="files not indexed, each with its reason")


class Removed(BaseModel):
    removed: list[str]


class ErrorOut(BaseModel):
    error: str


REFUSALS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 401, 403, 413, 422, 429)}


# The app ----------------------------------------------------------------------------------


def create_api(backend: Backend) -> FastAPI:
    """The FastAPI app with the JSON API's routes (mount the Gradio UI on it with `mount_ui`).

    Logins, origins and body sizes are `ui.guard`'s: it stands in front of these routes.
    """
    app = FastAPI(
        title="cite",
        summary="Answers with citations you can check: every quote is its document's text[start:end].",
        docs_url="/api/docs",
        redoc_url=None,
    )
    # The JSON routes return their JSONResponse themselves: the values are JSON types already,
    # and FastAPI's generic encoder took 1.1 ms an answer (json.dumps alone 0.3 ms).

    @app.post("/api/ask", response_model=None, responses={200: {"model": AnswerOut}, **REFUSALS})
    def ask(request: AskRequest) -> JSONResponse:
        """The answer to `question` with its citations, claims and hits (`cite ask --json`).
        With `history`, a follow-up ("And who opposed it?") is made standalone first."""
        return JSONResponse(_answer_json(backend, request))

    @app.post("/api/search", response_model=None, responses={200: {"model": HitsOut}, **REFUSALS})
    def search(request: SearchRequest) -> JSONResponse:
        """The k passages that best state `question`, with their places and scores (`cite search --json`)."""
        from cite.core.serialize import hits_json

        return JSONResponse({"hits": hits_json(backend.engine().search(request.question, request.k))})

    @app.get(
        "/api/documents", response_model=None, responses={200: {"model": list[DocumentOut]}, **REFUSALS}
    )
    def documents() -> JSONResponse:
        """What is indexed, by name."""
        return JSONResponse(backend.document_records())

    @app.post("/api/documents", response_model=Added, responses=REFUSALS)
    def add(files: Annotated[list[UploadFile], File(description="the documents (.txt, .md, .html, .pdf)")]) -> Added:
        """Indexes the files as `uploads/<name>`, after the changes queued before them; questions
        are answered from the current version meanwhile."""
        with tempfile.TemporaryDirectory(prefix="cite-upload-") as folder:
            names = [validate.file_name(upload.filename) for upload in files]
            if len(set(names)) != len(names):
                raise validate.BadInput("Two files have the same name; send each once.")
            paths = []
            for upload, name in zip(files, names, strict=True):
                path = Path(folder) / name
                with path.open("wb") as out:
                    shutil.copyfileobj(upload.file, out)
                paths.append(path)
            added, skipped = backend.add_files(paths)
        return Added(added=added, skipped=skipped)

    @app.post("/api/documents/remove", response_model=Removed, responses=REFUSALS)
    def remove(request: RemoveRequest) -> Removed:
        """Takes documents out of the index, after the changes queued before it."""
        return Removed(removed=backend.remove(request.names))

    # OpenAI's chat API for chat front ends (Open WebUI, the openai client): before the UI is
    # mounted at /, which would otherwise take its paths.
    app.include_router(openai_router(backend))

    app.add_exception_handler(RequestValidationError, _refused)

    @app.exception_handler(CiteError)
    async def cannot(request: Request, error: CiteError) -> JSONResponse:
        return JSONResponse({"error": backend.public_message(str(error))}, status_code=_status(error))

    @app.exception_handler(HTTPException)
    async def http_refusal(request: Request, error: HTTPException) -> JSONResponse:
        """FastAPI's own refusals (a body its parser rejects, an unknown route) in the API's shape."""
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def fault(request: Request, error: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return JSONResponse({"error": SERVER_FAULT}, status_code=500)

    return app


def _answer_json(backend: Backend, request: AskRequest) -> dict[str, Any]:
    from cite.core.serialize import answer_json

    return answer_json(backend.engine().ask(request.question, request.k, history=request.history or ()))


def mount_ui(app: FastAPI, blocks: Any, password: str | None, css: str, allowed_paths: list[str]) -> FastAPI:
    """The Gradio UI at /, behind its login form when a password is set.

    Args:
        allowed_paths: folders of files the UI itself shows (the Eval tab's plots).
    """
    import gradio as gr

    auth = (USER, password) if password else None
    blocks.state_session_capacity = UI_SESSIONS  # read when mounted; not a mount_gradio_app argument
    arrow_on_system_malloc()
    gr.mount_gradio_app(
        app,
        blocks,
        path="",
        auth=auth,
        css=css,
        # Only gr.Error's messages (ours, written for users) reach a client: any other exception's
        # text, such as Gradio's own refusal of a file path, may name the server's files.
        show_error=False,
        footer_links=["api"],
        max_file_size=validate.MAX_UPLOAD_BYTES,
        ssr_mode=False,
        mcp_server=False,  # cite's own MCP server is at /mcp (ui.mcp_server); Gradio's wants mcp<2
        allowed_paths=allowed_paths,
    )
    # Gradio checks that an input file is one its upload stored only once the Blocks have
    # "launched", which mounting never sets: without it, an input naming /any/file.txt was
    # copied into its cache and indexed. ui.guard refuses such a call first; this keeps
    # Gradio's own check on behind it.
    blocks.has_launched = True
    for route in app.routes:  # Gradio's own FastAPI app, mounted at /
        if isinstance(getattr(route, "app", None), FastAPI):
            # Its default 422 echoes the input, and fails (a 500) on a NaN it cannot render back.
            route.app.add_exception_handler(RequestValidationError, _refused)
    return app


def arrow_on_system_malloc() -> None:
    """Every new Gradio session copies the Documents table through pandas, whose strings are
    Arrow arrays. Arrow's default allocator, mimalloc, kept what the request threads freed: under
    the soak its 1 GiB arena grew ~5 MB a minute without end, most of the server's growth.
    glibc's malloc, which the rest of the server uses, reuses it."""
    try:
        import pyarrow
    except ImportError:  # pandas without Arrow strings: nothing to do
        return
    pyarrow.set_memory_pool(pyarrow.system_memory_pool())


async def _refused(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return JSONResponse({"error": _validation_message(error)}, status_code=422)


def _status(error: CiteError) -> int:
    """422 a bad value, 409 nothing indexed yet, 400 anything else the index cannot do."""
    if isinstance(error, validate.BadInput | BadQuestion):
        return 422
    return 409 if isinstance(error, IndexMissing) else 400


def _validation_message(error: RequestValidationError) -> str:
    """The first problem, in one line: ui.validate's own message, else the field and what it needs."""
    problems = error.errors()
    if not problems:
        return "The request is not valid."
    first = problems[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, CiteError):
        return str(cause)
    where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "body"
    if where.startswith("files"):
        return "Send the documents as multipart form files named `files`, each with its file name."
    if first.get("type") == "json_invalid":
        return "The request body is not valid JSON."
    if first.get("type") == "missing":
        return f"{where} is missing." if where != "body" else "The request needs a JSON body."
    if first.get("type") == "extra_forbidden":
        return f"{where} is not a field of this request."
    return f"{where}: {first.get('msg', 'not valid')}."
