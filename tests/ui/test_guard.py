"""The server's door (ui.guard) against what an attacker sends: each test is a finding of the
security probe (issue #26), sent as the attacker sent it, in process with the fake embedder."""

from __future__ import annotations

import base64
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from cite.ui.guard import MAX_JSON_BYTES, Door, Guard, LoginLimiter, gradio_upload_folder
from cite.ui.server import server_app, uvicorn_options
from fastapi.testclient import TestClient

from tests.ui.helpers import live_server

PASSWORD = "correct horse 7"
SECRET = "The launch code is swordfish."


def gradio_blocks(app: Guard):
    """The Gradio Blocks mounted inside the guarded app."""
    (gradio,) = [r.app for r in app.app.routes if hasattr(getattr(r, "app", None), "state_holder")]
    return gradio.get_blocks()


def join(client, app: Guard, handler: str, data: list, headers: dict | None = None) -> httpx.Response:
    """Gradio's queue call of a UI event by its handler's name, as the page (or an attacker) sends it."""
    blocks = gradio_blocks(app)
    fn_index = next(i for i, fn in blocks.fns.items() if fn.name == handler)
    body = {"data": data, "fn_index": fn_index, "session_hash": "s3cr3t", "event_data": None, "trigger_id": None}
    return client.post("/gradio_api/queue/join", json=body, headers=headers or {})


def outcome(client) -> str:
    """The queued event's last message."""
    last = ""
    with client.stream("GET", "/gradio_api/queue/data?session_hash=s3cr3t") as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                last = line
                if "process_completed" in line:
                    break
    return last


def file_data(path: str) -> dict:
    return {"path": path, "orig_name": "secret.txt", "meta": {"_type": "gradio.FileData"}}


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text(SECRET, encoding="utf-8")
    return path


def indexed(backend) -> list[str]:
    return backend.document_names()


def test_a_file_the_client_names_by_path_is_never_read(backend, secret):
    """Finding 1: the Documents tab's add-files event indexed any path named in a FileData."""
    app = server_app(backend.root, backend=backend)
    with TestClient(app) as client:
        for named in (str(secret), f"{gradio_upload_folder()}/../{secret}", "http://127.0.0.1:9/secret.txt"):
            refused = join(client, app, "add_files", [[file_data(named)]])
            assert refused.status_code == 403, refused.text
            assert "only name files uploaded" in refused.json()["error"]
            assert str(secret.parent) not in refused.text
        eval_file = join(client, app, "run_eval", [file_data(str(secret.with_suffix(".jsonl"))), False])
        assert eval_file.status_code == 403
    assert "uploads/secret.txt" not in indexed(backend)


def test_gradios_own_check_stands_behind_the_guard(backend, secret):
    """Without ui.guard in front, Gradio itself refuses the path (its check was off when mounted),
    and its refusal reaches the client without naming the server's files."""
    app = server_app(backend.root, backend=backend)
    with TestClient(app.app) as client:  # the app behind the guard
        assert join(client, app, "add_files", [[file_data(str(secret))]]).status_code == 200
        done = outcome(client)
        assert '"success":false' in done and str(secret) not in done and str(secret.parent) not in done
    assert "uploads/secret.txt" not in indexed(backend)


def test_a_file_uploaded_through_gradio_is_still_indexed(backend, tmp_path):
    app = server_app(backend.root, backend=backend)
    with TestClient(app) as client:
        uploaded = client.post("/gradio_api/upload", files=[("files", ("owls.txt", b"Owls hunt at night."))])
        assert uploaded.status_code == 200, uploaded.text
        (path,) = uploaded.json()
        assert join(client, app, "add_files", [[file_data(path) | {"orig_name": "owls.txt"}]]).status_code == 200
        assert "Indexed uploads" in outcome(client)
    assert "uploads/owls.txt" in indexed(backend)


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/api/documents", "files"),
        ("/gradio_api/upload", "files"),
        ("/api/documents/remove", "json"),
        ("/api/ask", "json"),
    ],
)
def test_pages_of_other_sites_cannot_write(backend, path, kind):
    """Finding 6: a page elsewhere could plant a document with a no-cors multipart POST."""
    app = server_app(backend.root, backend=backend)
    send = {"files": [("files", ("planted.txt", b"Planted text."))]} if kind == "files" else {"json": {"names": ["x"]}}
    with TestClient(app, base_url="http://127.0.0.1:7860") as client:
        for origin in ({"origin": "http://evil.example"}, {"referer": "http://evil.example/page"}, {"origin": "null"}):
            refused = client.post(path, headers=origin, **send)
            assert refused.status_code == 403 and "another site" in refused.json()["error"]
        same_site = client.post(path, headers={"origin": "http://127.0.0.1:7860"}, **send)
        assert same_site.status_code != 403
    assert "uploads/planted.txt" not in indexed(backend) or kind == "files"


def test_a_loopback_server_answers_only_requests_for_this_machine(backend):
    """A page whose name is re-pointed at 127.0.0.1 (DNS rebinding) sends its own name as Host."""
    app = server_app(backend.root, Door(local_only=True), backend=backend)
    with TestClient(app, base_url="http://evil.example:7860") as client:
        refused = client.get("/api/documents")
        assert refused.status_code == 403 and "localhost only" in refused.json()["error"]
    for host in ("127.0.0.1:7860", "localhost:7860", "[::1]:7860"):
        with TestClient(app, base_url=f"http://{host}") as client:
            assert client.get("/api/documents").status_code == 200


class CountingBody:
    """ASGI middleware that counts the request body bytes the app behind it read."""

    def __init__(self, app) -> None:
        self.app, self.read = app, 0

    async def __call__(self, scope, receive, send):
        async def counted():
            message = await receive()
            self.read += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


def test_logins_are_checked_before_a_byte_of_the_body_is_read(backend):
    """Finding 7: an unauthenticated 200 MB upload was spooled to disk before its 401."""
    counting = CountingBody(server_app(backend.root, PASSWORD, backend=backend))
    body = b"--b\r\nContent-Disposition: form-data; name=files; filename=big.txt\r\n\r\n" + b"x" * (8 << 20)
    headers = {"content-type": "multipart/form-data; boundary=b"}
    with TestClient(counting) as client:
        refused = client.post("/api/documents", content=body, headers=headers)
        assert refused.status_code == 401 and "Log in" in refused.json()["error"]
        assert counting.read == 0
        refused = client.post("/api/ask", json={"question": "x" * 100}, auth=("cite", "wrong"))
        assert refused.status_code == 401 and counting.read == 0
        assert client.post("/api/ask", json={"question": "Bees?"}, auth=("cite", PASSWORD)).status_code == 200
        bearer = {"authorization": f"Bearer {PASSWORD}"}
        assert client.post("/api/ask", json={"question": "Bees?"}, headers=bearer).status_code == 200
        counting.read = 0
        for door in ("/v1/chat/completions", "/mcp"):  # the doors for programs, whatever is behind them
            refused = client.post(door, content=body, headers=headers)
            assert refused.status_code == 401 and counting.read == 0


def test_every_refusal_of_the_api_is_an_error_object(backend):
    """Finding 8: a body the multipart parser rejects got FastAPI's {"detail"}."""
    with TestClient(server_app(backend.root, backend=backend)) as client:
        broken = client.post(
            "/api/documents", content=b"not multipart", headers={"content-type": "multipart/form-data; boundary=zz"}
        )
        assert 400 <= broken.status_code < 500 and set(broken.json()) == {"error"}
        big = client.post("/gradio_api/queue/join", content=b"{" + b" " * MAX_JSON_BYTES + b"}")
        assert big.status_code == 413 and set(big.json()) == {"error"}


def test_parallel_wrong_logins_are_limited_like_consecutive_ones():
    """Finding 8: the check ran before the count, so a burst of guesses all got through."""
    limiter = LoginLimiter(failures=5, window=60)
    barrier = threading.Barrier(40)

    def guess(_: int) -> float:
        barrier.wait()
        return limiter.attempt("10.0.0.1")

    with ThreadPoolExecutor(40) as pool:
        waits = list(pool.map(guess, range(40)))
    assert sum(wait == 0 for wait in waits) == 5


def test_a_right_login_is_forgiven_and_the_window_passes():
    limiter = LoginLimiter(failures=2, window=10)
    assert limiter.attempt("a", now=0) == 0
    limiter.succeeded("a")
    assert limiter.attempt("a", now=1) == 0 and limiter.attempt("a", now=2) == 0
    assert limiter.attempt("a", now=3) == 8 and limiter.attempt("b", now=3) == 0
    assert limiter.attempt("a", now=11.5) == 0  # the first failure is a window old


@pytest.mark.parametrize("trust_proxy", [False, True])
def test_forwarded_for_is_believed_only_behind_a_trusted_proxy(backend, trust_proxy):
    """Finding 8: uvicorn believed X-Forwarded-For from loopback, so a guesser rotating it was
    never limited. `cite serve` runs uvicorn with these options; here on a real socket."""
    app = server_app(backend.root, Door(PASSWORD, local_only=True, trust_proxy=trust_proxy), backend=backend)
    wrong = "Basic " + base64.b64encode(b"cite:guess").decode()
    statuses = []
    with live_server(app, **uvicorn_options("127.0.0.1", 0, trust_proxy)) as url:
        for n in range(8):
            headers = {"authorization": wrong, "x-forwarded-for": f"203.0.113.{n}"}
            statuses.append(httpx.get(f"{url}/api/documents", headers=headers).status_code)
    assert statuses == ([401] * 8 if trust_proxy else [401] * 5 + [429] * 3)


def test_the_guard_reads_json_values_as_gradio_does():
    """A FileData spelled with JSON escapes is still one (Gradio compares the decoded text)."""
    from cite.ui.guard import _named_server_file

    escaped = b'{"data": [[{"path": "/etc/x.txt", "meta": {"_type": "gradio.File\\u0044ata"}}]]}'
    assert _named_server_file(escaped) is not None
    inside = json.dumps({"data": [[file_data(str(gradio_upload_folder() / "abc" / "x.txt"))]]}).encode()
    assert _named_server_file(inside) is None


def test_the_openai_client_reaches_chat_through_the_password(backend):
    """/v1 on the whole server: the password is the API key; a wrong one is refused in OpenAI's
    error shape, which the client shows."""
    import openai

    documents = backend.engine().snapshot().index.documents
    with TestClient(server_app(backend.root, PASSWORD, backend=backend)) as http:
        client = openai.OpenAI(base_url="http://testserver/v1", api_key=PASSWORD, http_client=http, max_retries=0)
        reply = client.chat.completions.create(model="cite", messages=[{"role": "user", "content": "Which river?"}])
        citations = reply.choices[0].message.model_extra["citations"]
        assert citations and all(documents[c["doc"]].text[c["start"] : c["end"]] == c["quote"] for c in citations)
        wrong = openai.OpenAI(base_url="http://testserver/v1", api_key="guess", http_client=http, max_retries=0)
        with pytest.raises(openai.AuthenticationError, match="Log in"):
            wrong.models.list()


def test_cite_serve_answers_mcp_at_slash_mcp_behind_the_password(backend):
    initialize = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }  # fmt: skip
    headers = {"accept": "application/json, text/event-stream"}
    with TestClient(server_app(backend.root, PASSWORD, backend=backend)) as client:
        assert client.post("/mcp", json=initialize, headers=headers).status_code == 401
        answered = client.post("/mcp", json=initialize, headers={**headers, "authorization": f"Bearer {PASSWORD}"})
        assert answered.status_code == 200 and answered.json()["result"]["serverInfo"]["name"]
