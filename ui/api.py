"""A plain JSON API beside the chat UI, on the same server: one request per call.

    POST /api/ask        {"question", "history"?, "k"?}  -> `cite ask --json`'s answer
    POST /api/search     {"question", "k"?}              -> `cite search --json`'s {"hits"}
    GET  /api/documents                                  -> what is indexed
    POST /api/documents  multipart files                 -> indexed (queued behind other changes)
    POST /api/documents/remove {"names"}                 -> removed (queued likewise)

The schema is at /openapi.json (browsable at /api/docs). Every value is checked by
`ui.validate`, as in the UI; a refusal is `{"error": message}` with 422 (a bad value), 400
(the index cannot do it), 401 (a password is set: HTTP basic, user `cite`), 413 (too big) or
429 (too many failed logins). The Gradio UI is mounted at / with the same password (its own
login form), and its login is rate-limited by the same counter.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import BadQuestion, CiteError, IndexMissing
from ui import validate
from ui.backend import Backend

log = logging.getLogger(__name__)

USER = "cite"
LOGIN_FAILURES, LOGIN_WINDOW_S = 5, 60.0  # then 429 until the oldest failure is a window old
MAX_JSON_BYTES = 8 * 1024 * 1024  # a full history (MAX_TURNS x MAX_TURN_CHARS) fits
MAX_UPLOAD_BODY = validate.MAX_UPLOADS * validate.MAX_UPLOAD_BYTES + 1024 * 1024
SERVER_FAULT = "Something went wrong on the server (its log has the details); try again."
# Gradio keeps every session's state (a copy of each component's config, ~0.1 MB here) until
# its 10000th newer session: every call of its HTTP API is a new session, so a busy server grew
# ~0.15 MB/s under the soak. The least recently used session beyond this many is forgotten (a
# browser tab idle that long loses its last answer's citation panel, not its chat).
UI_SESSIONS = 256

Credentials = Annotated[HTTPBasicCredentials | None, Depends(HTTPBasic(auto_error=False))]
Scope = MutableMapping[str, Any]
ASGI = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


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

    question: str = Field(description=f"at most {validate.MAX_QUESTION_CHARS:,} characters once cleaned")
    k: int = Field(validate.DEFAULT_K, ge=validate.K_MIN, le=validate.K_MAX, description="passages returned")

    _question = field_validator("question", mode="before")(lambda value: validate.question(value))
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


REFUSALS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 401, 413, 422, 429)}


# Logins -----------------------------------------------------------------------------------


class LoginLimiter:
    """At most `failures` failed logins per client in `window` seconds; then it waits.

    One counter for the UI's login form and the API's HTTP basic, so switching doors gains
    a guesser nothing.
    """

    def __init__(self, failures: int = LOGIN_FAILURES, window: float = LOGIN_WINDOW_S) -> None:
        self.failures, self.window = failures, window
        self._failed: defaultdict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def wait(self, client: str, now: float | None = None) -> float:
        """Seconds `client` must wait before its next try (0: it may try now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failed = self._failed.get(client)
            if not failed:
                return 0.0
            while failed and now - failed[0] >= self.window:
                failed.popleft()
            if not failed:
                del self._failed[client]
                return 0.0
            return self.window - (now - failed[0]) if len(failed) >= self.failures else 0.0

    def failed(self, client: str, now: float | None = None) -> None:
        with self._lock:
            self._failed[client].append(time.monotonic() if now is None else now)


class TooManyLogins(Exception):
    def __init__(self, wait: float) -> None:
        self.wait = wait


class NotLoggedIn(Exception):
    pass


def _too_many(wait: float) -> JSONResponse:
    seconds = max(int(wait + 0.999), 1)
    return JSONResponse(
        {"error": f"Too many failed logins from this address; try again in {seconds} s."},
        status_code=429,
        headers={"Retry-After": str(seconds)},
    )


class Limits:
    """ASGI middleware: rate-limits the UI's login form, and bounds the API's request bodies."""

    def __init__(self, app: ASGI, limiter: LoginLimiter) -> None:
        self.app, self.limiter = app, limiter

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/")
        if path.startswith("/api/"):
            limit = MAX_UPLOAD_BODY if path == "/api/documents" else MAX_JSON_BYTES
            refusal = _body_refusal(scope, limit)
            if refusal is not None:
                return await refusal(scope, receive, send)
            return await self.app(scope, receive, send)
        if path != "/login":
            return await self.app(scope, receive, send)
        client = _client(scope)
        wait = self.limiter.wait(client)
        if wait > 0:
            return await _too_many(wait)(scope, receive, send)
        status: dict[str, int] = {}

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, sending)
        if status.get("code") == 400:  # Gradio's "Incorrect credentials."
            self.limiter.failed(client)


def _body_refusal(scope: Scope, limit: int) -> JSONResponse | None:
    headers = dict(scope["headers"])
    length = headers.get(b"content-length")
    if length is None:
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            return JSONResponse({"error": "Send the request with a Content-Length."}, status_code=411)
        return None
    if not length.isdigit() or int(length) > limit:
        return JSONResponse(
            {"error": f"The request body is over the {limit // (1024 * 1024)} MB this endpoint reads."},
            status_code=413,
        )
    return None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


# The app ----------------------------------------------------------------------------------


def create_api(backend: Backend, password: str | None = None, limiter: LoginLimiter | None = None) -> FastAPI:
    """The FastAPI app with the JSON API's routes (mount the Gradio UI on it with `mount_ui`).

    Args:
        password: None: open (loopback use); else HTTP basic as user `cite` with it.
        limiter: the failed-login counter (shared with the UI's login form).
    """
    limiter = limiter or LoginLimiter()
    app = FastAPI(
        title="cite",
        summary="Answers with citations you can check: every quote is its document's text[start:end].",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.limiter = limiter

    def login(request: Request, credentials: Credentials) -> None:
        if password is None:
            return
        client = request.client.host if request.client else "unknown"
        wait = limiter.wait(client)
        if wait > 0:
            raise TooManyLogins(wait)
        if credentials is None:
            raise NotLoggedIn
        if not (
            secrets.compare_digest(credentials.username.encode(), USER.encode())
            and secrets.compare_digest(credentials.password.encode(), password.encode())
        ):
            limiter.failed(client)
            raise NotLoggedIn

    guarded = {"dependencies": [Depends(login)]}
    # The JSON routes return their JSONResponse themselves: the values are JSON types already,
    # and FastAPI's generic encoder took 1.1 ms an answer (json.dumps alone 0.3 ms).

    @app.post("/api/ask", response_model=None, responses={200: {"model": AnswerOut}, **REFUSALS}, **guarded)
    def ask(request: AskRequest) -> JSONResponse:
        """The answer to `question` with its citations, claims and hits (`cite ask --json`).
        With `history`, a follow-up ("And who opposed it?") is made standalone first."""
        return JSONResponse(_answer_json(backend, request))

    @app.post("/api/search", response_model=None, responses={200: {"model": HitsOut}, **REFUSALS}, **guarded)
    def search(request: SearchRequest) -> JSONResponse:
        """The k passages that best state `question`, with their places and scores (`cite search --json`)."""
        from core.serialize import hits_json

        return JSONResponse({"hits": hits_json(backend.engine().search(request.question, request.k))})

    @app.get(
        "/api/documents", response_model=None, responses={200: {"model": list[DocumentOut]}, **REFUSALS}, **guarded
    )
    def documents() -> JSONResponse:
        """What is indexed, by name."""
        from ui.web import api_documents

        return JSONResponse(api_documents(backend))

    @app.post("/api/documents", response_model=Added, responses=REFUSALS, **guarded)
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

    @app.post("/api/documents/remove", response_model=Removed, responses=REFUSALS, **guarded)
    def remove(request: RemoveRequest) -> Removed:
        """Takes documents out of the index, after the changes queued before it."""
        return Removed(removed=backend.remove(request.names))

    app.add_exception_handler(RequestValidationError, _refused)

    @app.exception_handler(CiteError)
    async def cannot(request: Request, error: CiteError) -> JSONResponse:
        return JSONResponse({"error": backend.public_message(str(error))}, status_code=_status(error))

    @app.exception_handler(NotLoggedIn)
    async def unauthorised(request: Request, error: NotLoggedIn) -> JSONResponse:
        return JSONResponse(
            {"error": f"Log in: HTTP basic auth as user '{USER}' with the server's password."},
            status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="cite"'},
        )

    @app.exception_handler(TooManyLogins)
    async def too_many(request: Request, error: TooManyLogins) -> JSONResponse:
        return _too_many(error.wait)

    @app.exception_handler(Exception)
    async def fault(request: Request, error: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return JSONResponse({"error": SERVER_FAULT}, status_code=500)

    return app


def _answer_json(backend: Backend, request: AskRequest) -> dict[str, Any]:
    from core.serialize import answer_json

    return answer_json(backend.engine().ask(request.question, request.k, history=request.history or ()))


def mount_ui(app: FastAPI, blocks: Any, password: str | None, css: str) -> Any:
    """The Gradio UI at /, behind its login form when a password is set, both doors limited."""
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
        show_error=True,
        footer_links=["api"],
        max_file_size=validate.MAX_UPLOAD_BYTES,
        ssr_mode=False,
    )
    for route in app.routes:  # Gradio's own FastAPI app, mounted at /
        if isinstance(getattr(route, "app", None), FastAPI):
            # Its default 422 echoes the input, and fails (a 500) on a NaN it cannot render back.
            route.app.add_exception_handler(RequestValidationError, _refused)
    return Limits(app, app.state.limiter)


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
