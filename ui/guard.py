"""The server's door: every request is checked here before the JSON API or the Gradio UI sees it.

In order, each check refusing with `{"error": message}` and never reading more than it must:
1. A server on loopback answers only requests addressed to this machine (a web page whose
   name was re-pointed at 127.0.0.1, DNS rebinding, gets 403).
2. A request that changes something (any method but GET, HEAD, OPTIONS) from a page of
   another origin gets 403: the Origin (else Referer) must name the host it was sent to.
   Programs (curl, httpx) send neither and pass.
3. With a password, the program doors' login (the JSON API, the OpenAI-compatible /v1 and
   MCP's /mcp: HTTP basic auth, or the password as a Bearer token) is checked before the body
   is read (an unauthenticated upload is refused without a byte of it stored), and the
   failed-login counter is taken in the same step as the check, so parallel guesses cannot
   slip past it.
   The UI's login form (`/login`) counts against the same limit.
4. Bodies are bounded (Content-Length required over a size; chunked uploads refused).
5. A Gradio call may name files only in Gradio's upload folder, by what its own upload
   returned: a path elsewhere on the server or a URL is refused before Gradio would copy
   (or download) it into its cache and hand it to a handler.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cite.ui import validate
from starlette.responses import JSONResponse

USER = "cite"
LOGIN_FAILURES, LOGIN_WINDOW_S = 5, 60.0  # then 429 until the oldest failure is a window old
MAX_JSON_BYTES = 8 * 1024 * 1024  # a full history (MAX_TURNS x MAX_TURN_CHARS) fits
MAX_UPLOAD_BODY = validate.MAX_UPLOADS * validate.MAX_UPLOAD_BYTES + 1024 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
GRADIO_PREFIX = "/gradio_api/"
GRADIO_UPLOAD = "/gradio_api/upload"  # multipart, bounded by Gradio's own max_file_size
# Doors for programs, behind HTTP basic auth (or a Bearer token: the password) when a password
# is set; the UI's own doors have Gradio's login form.
PROGRAM_DOORS = ("/api/", "/v1/", "/mcp")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Door:
    """Who may come in.

    Attributes:
        password: None: no login (loopback use); else HTTP basic (API) or the login form (UI), user `cite`.
        local_only: answer only requests whose Host names this machine (a loopback server).
        trust_proxy: behind a reverse proxy: take the origin's host from X-Forwarded-Host (the
            client's address from X-Forwarded-For is uvicorn's `proxy_headers`, set with it).
    """

    password: str | None = None
    local_only: bool = False
    trust_proxy: bool = False


class LoginLimiter:
    """At most `failures` failed logins per client in `window` seconds; then it waits.

    One counter for the UI's login form and the API's HTTP basic, so switching doors gains a
    guesser nothing. An attempt is counted as failed when it starts (`attempt`) and forgiven when
    it succeeds, so a burst of parallel guesses is limited like a sequence of them.
    """

    def __init__(self, failures: int = LOGIN_FAILURES, window: float = LOGIN_WINDOW_S) -> None:
        self.failures, self.window = failures, window
        self._failed: defaultdict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def attempt(self, client: str, now: float | None = None) -> float:
        """Seconds `client` must wait (0: go ahead, the attempt now counted as a failure until `succeeded`)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failed = self._failed[client]
            while failed and now - failed[0] >= self.window:
                failed.popleft()
            if len(failed) >= self.failures:
                return self.window - (now - failed[0])
            failed.append(now)
            return 0.0

    def wait(self, client: str, now: float | None = None) -> float:
        """Seconds `client` must wait before its next attempt (0: it may try now); counts nothing."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failed = self._failed.get(client)
            if not failed or len(failed) < self.failures:
                return 0.0
            return max(self.window - (now - failed[-self.failures]), 0.0)

    def succeeded(self, client: str) -> None:
        """Forgives the attempt `attempt` counted: the login was right."""
        with self._lock:
            failed = self._failed.get(client)
            if failed:
                failed.pop()
            if not failed:
                self._failed.pop(client, None)


class Guard:
    """ASGI middleware in front of the whole server (see the module's docstring)."""

    def __init__(self, app: ASGI, door: Door, limiter: LoginLimiter | None = None) -> None:
        self.app, self.door = app, door
        self.limiter = limiter or LoginLimiter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = _headers(scope)
        if self.door.local_only and not _names_this_machine(headers.get("host", "")):
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            return await _refusal(403, "This server answers requests for localhost only.", scope["path"])(
                scope, receive, send
            )
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        path, method = scope["path"].rstrip("/") or "/", scope["method"]
        if method not in SAFE_METHODS and _cross_origin(headers, self.door.trust_proxy):
            message = "Refused: the request came from a page of another site. Use cite's own page, or a program."
            return await _refusal(403, message, path)(scope, receive, send)
        if path.startswith(PROGRAM_DOORS) and self.door.password is not None:
            refusal = self._login(scope, headers, path)
            if refusal is not None:
                return await refusal(scope, receive, send)
        if method in SAFE_METHODS:
            return await self.app(scope, receive, send)
        if path == "/login":
            return await self._login_form(scope, receive, send)
        limit = _body_limit(path)
        if limit is None:
            return await self.app(scope, receive, send)
        refusal = _body_refusal(headers, limit, path)
        if refusal is not None:
            return await refusal(scope, receive, send)
        if path.startswith(GRADIO_PREFIX):
            body = await _read_body(receive)
            named = _named_server_file(body)
            if named:
                return await _refusal(403, named, path)(scope, receive, send)
            receive = _replay(body)
        return await self.app(scope, receive, send)

    def _login(self, scope: Scope, headers: dict[str, str], path: str) -> JSONResponse | None:
        """None when the request carries the password; else its 401 or 429."""
        client, authorization = _client(scope), headers.get("authorization")
        # No credentials is a client asking how to log in (a browser's first request), not a guess.
        wait = self.limiter.attempt(client) if authorization else self.limiter.wait(client)
        if wait > 0:
            return _too_many(wait, path)
        if authorization and _logged_in(authorization, self.door.password):
            self.limiter.succeeded(client)
            return None
        message = f"Log in: HTTP basic auth as user '{USER}', or a Bearer token, with the server's password."
        return _refusal(401, message, path, {"WWW-Authenticate": 'Basic realm="cite"'})

    async def _login_form(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Gradio's login form, counted: a 400 is its "Incorrect credentials."."""
        client = _client(scope)
        wait = self.limiter.attempt(client)
        if wait > 0:
            return await _too_many(wait, "/login")(scope, receive, send)
        status: dict[str, int] = {}

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, sending)
        if status.get("code") != 400:
            self.limiter.succeeded(client)


def gradio_upload_folder() -> Path:
    """Where Gradio stores what its upload route received (GRADIO_TEMP_DIR, else <tmp>/gradio)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def _named_server_file(body: bytes) -> str | None:
    """Why a Gradio call's body is refused: a file it names that Gradio's upload did not store."""
    try:
        data = json.loads(body)
    except ValueError:
        return None  # not JSON: Gradio refuses it itself
    folder = gradio_upload_folder()
    for path in _file_paths(data):
        if "://" in path or not _inside(path, folder):
            return (
                "Refused: a call may only name files uploaded to this server (POST /gradio_api/upload), "
                "not a path or a URL."
            )
    return None


def _file_paths(value: Any, depth: int = 0) -> Iterator[str]:
    """Every `path` of a Gradio FileData in a JSON value (how Gradio itself recognises one)."""
    if depth > 64:  # deeper than any Gradio payload; json.loads already bounded the size
        yield "<too deep>"
        return
    if isinstance(value, dict):
        meta = value.get("meta")
        if isinstance(meta, dict) and meta.get("_type") == "gradio.FileData":
            path = value.get("path")
            yield path if isinstance(path, str) else "<not text>"
        for item in value.values():
            yield from _file_paths(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _file_paths(item, depth + 1)


def _inside(path: str, folder: Path) -> bool:
    try:
        resolved = Path(os.path.abspath(path)).resolve()
    except (OSError, ValueError):
        return False
    return resolved.is_relative_to(folder) and resolved != folder


def is_loopback(host: str) -> bool:
    """Whether a host name or address is this machine's loopback (localhost, 127.x.x.x, ::1)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _names_this_machine(host_header: str) -> bool:
    """Whether a Host header (`name:port`, `[::1]:port`) names a loopback address."""
    try:
        return is_loopback(urlsplit(f"//{host_header}").hostname or "")
    except ValueError:  # a malformed port or bracket
        return False


def _cross_origin(headers: dict[str, str], trust_proxy: bool) -> bool:
    """Whether a browser sent this from a page of another origin (Origin, else Referer, against Host)."""
    origin = headers.get("origin") or headers.get("referer")
    if origin is None:
        return False  # not sent by a browser page
    if origin == "null":
        return True  # a sandboxed frame or a local file
    host = (headers.get("x-forwarded-host") if trust_proxy else None) or headers.get("host", "")
    return urlsplit(origin).netloc.lower() != host.split(",")[0].strip().lower()


def _body_limit(path: str) -> int | None:
    """The bytes a POST to `path` may carry; None: the route bounds its own body."""
    if path == "/api/documents":
        return MAX_UPLOAD_BODY
    if path == GRADIO_UPLOAD:
        return None
    if path.startswith((*PROGRAM_DOORS, GRADIO_PREFIX)):
        return MAX_JSON_BYTES
    return None


def _body_refusal(headers: dict[str, str], limit: int, path: str) -> JSONResponse | None:
    length = headers.get("content-length")
    if length is None:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return _refusal(411, "Send the request with a Content-Length.", path)
        return None
    if not length.isdigit() or int(length) > limit:
        return _refusal(413, f"The request body is over the {limit // (1024 * 1024)} MB this endpoint reads.", path)
    return None


async def _read_body(receive: Receive) -> bytes:
    """The whole body (its Content-Length was checked against the limit first)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    """A `receive` that gives the app the body already read, then waits for the client as usual."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _logged_in(authorization: str, password: str) -> bool:
    """Whether an Authorization header is HTTP basic auth as user `cite` with `password`, or
    `Bearer <password>` (what OpenAI and MCP clients send as their API key)."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return secrets.compare_digest(encoded.strip().encode(), password.encode())
    if scheme.lower() != "basic":
        return False
    try:
        user, _, given = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    same_user = secrets.compare_digest(user.encode(), USER.encode())
    return secrets.compare_digest(given.encode(), password.encode()) and same_user


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def _refusal(status: int, message: str, path: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """`{"error": message}`; on /v1/, OpenAI's error object, which its clients show."""
    error: Any = message
    if path.startswith("/v1/"):
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _too_many(wait: float, path: str) -> JSONResponse:
    seconds = max(int(wait + 0.999), 1)
    message = f"Too many failed logins from this address; try again in {seconds} s."
    return _refusal(429, message, path, {"Retry-After": str(seconds)})
