"""The JSON API and the Gradio API on one app, in process (the fake embedder, a tiny corpus)."""

from __future__ import annotations

import logging

import pytest
from cite.core.serialize import answer_json, hits_json
from cite.ui import api, guard
from cite.ui.backend import Backend
from cite.ui.server import server_app
from fastapi.testclient import TestClient

from tests.ui.helpers import CASPIAN, tiny_backend

PASSWORD = "correct horse 7"


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """(a client, its backend) shared by the tests that change nothing: building the app takes seconds."""
    backend = tiny_backend(tmp_path_factory.mktemp("api"))
    with TestClient(server_app(backend.root, backend=backend)) as client:
        yield client, backend


@pytest.fixture
def client(backend):
    """A client of its own (the test changes the index)."""
    with TestClient(server_app(backend.root, backend=backend)) as client:
        yield client


def gradio_call(client, endpoint: str, data: list) -> tuple[str, str]:
    """(the event, its data) of one call through Gradio's queue API."""
    posted = client.post(f"/gradio_api/call/{endpoint}", json={"data": data})
    assert posted.status_code == 200, posted.text
    body = client.get(f"/gradio_api/call/{endpoint}/{posted.json()['event_id']}").text
    lines = body.splitlines()
    event = next(line for line in lines if line.startswith("event:"))[6:].strip()
    return event, next(line for line in lines if line.startswith("data:"))[5:].strip()


def test_ask_and_search_give_the_clis_json(shared):
    client, backend = shared
    engine = backend.engine()
    asked = client.post("/api/ask", json={"question": CASPIAN})
    assert asked.status_code == 200 and asked.json() == answer_json(engine.ask(CASPIAN))
    follow = client.post("/api/ask", json={"question": "Where does it flow?", "history": ["the Volga?"], "k": 3})
    assert follow.json() == answer_json(engine.ask("Where does it flow?", 3, history=["the Volga?"]))
    searched = client.post("/api/search", json={"question": CASPIAN, "k": 2})
    assert searched.json() == {"hits": hits_json(engine.search(CASPIAN, 2))} and len(searched.json()["hits"]) == 2
    names = [row["document"] for row in client.get("/api/documents").json()]
    assert names == ["bees.txt", "rivers.md"]


def test_the_schema_describes_what_is_sent(shared):
    client, _ = shared
    schema = client.get("/openapi.json").json()
    assert {"/api/ask", "/api/search", "/api/documents", "/api/documents/remove"} <= set(schema["paths"])
    ask = schema["components"]["schemas"]["AskRequest"]["properties"]
    assert ask["k"]["minimum"] == 1 and ask["k"]["maximum"] == 100
    # The documented shapes are exactly the JSON sent (extra fields are forbidden in them).
    api.AnswerOut.model_validate(client.post("/api/ask", json={"question": CASPIAN}).json())
    api.HitsOut.model_validate(client.post("/api/search", json={"question": CASPIAN}).json())
    for row in client.get("/api/documents").json():
        api.DocumentOut.model_validate(row)


def test_a_search_may_be_a_pasted_passage_and_a_question_may_not(shared):
    client, _ = shared
    passage = "The Volga is the longest river in Europe. " * 100  # 4,300 characters
    assert client.post("/api/search", json={"question": passage}).status_code == 200
    refused = client.post("/api/ask", json={"question": passage})
    assert refused.status_code == 422 and "ask in at most 2,000" in refused.json()["error"]


@pytest.mark.parametrize(
    "body,message",
    [
        ({"question": CASPIAN, "k": -3}, "k must be a whole number from 1 to 100, not -3."),
        ({"question": CASPIAN, "k": 100000}, "k must be a whole number from 1 to 100, not 100000."),
        ({"question": CASPIAN, "k": "5"}, "k must be a whole number from 1 to 100, not '5'."),
        ({"question": "   "}, "The question is empty"),
        ({"question": "x" * 200_000}, "200,000 characters long; "),
        ({"question": ["a"]}, "must be text, not a list."),
        ({}, "question is missing."),
        ({"question": CASPIAN, "limit": 3}, "limit is not a field of this request."),
        ({"question": CASPIAN, "history": "the Volga"}, "The history must be a list of questions"),
        ({"question": CASPIAN, "history": ["q"] * 101}, "101 messages; at most 100"),
    ],
)
def test_bad_values_get_one_clear_422(shared, body, message):
    client, _ = shared
    for endpoint in ("/api/ask", "/api/search") if "history" not in body else ("/api/ask",):
        refused = client.post(endpoint, json=body)
        assert refused.status_code == 422 and message in refused.json()["error"], refused.text


def test_bodies_that_are_not_objects_or_too_big(shared):
    client, _ = shared
    assert client.post("/api/search", content=b"{no", headers={"content-type": "application/json"}).json() == {
        "error": "The request body is not valid JSON."
    }
    assert client.post("/api/search", json=[CASPIAN]).status_code == 422
    huge = b'{"question": "' + b"x" * (guard.MAX_JSON_BYTES + 1) + b'"}'
    refused = client.post("/api/ask", content=huge, headers={"content-type": "application/json"})
    assert refused.status_code == 413 and "over the 8 MB" in refused.json()["error"]


def test_uploads_and_removals_over_the_api(client, backend, tmp_path):
    added = client.post("/api/documents", files=[("files", ("lake.txt", b"Lake Baikal is the deepest lake."))])
    assert added.json() == {"added": ["uploads/lake.txt"], "skipped": []}
    assert backend.engine().search("Baikal deepest", 1)[0].passage.doc == "uploads/lake.txt"
    for name, message in (("../../etc/x.txt", "is a path"), ("tool.exe", "not a type cite reads")):
        refused = client.post("/api/documents", files=[("files", (name, b"x"))])
        assert refused.status_code == 422 and message in refused.json()["error"]
    binary = client.post("/api/documents", files=[("files", ("junk.txt", b"\x00\x01"))]).json()
    assert binary["added"] == [] and "junk.txt: looks binary" in binary["skipped"][0]
    assert str(tmp_path) not in str(binary)
    removed = client.post("/api/documents/remove", json={"names": ["uploads/lake.txt"]})
    assert removed.json() == {"removed": ["uploads/lake.txt"]}
    assert client.post("/api/documents/remove", json={"names": []}).json()["error"].startswith("Pick the documents")


def test_no_index_yet_is_a_409_that_names_no_server_path(tmp_path, fake_embedder):
    backend = Backend(tmp_path / "none", fake_embedder, reports=tmp_path / "reports")
    with TestClient(server_app(backend.root, backend=backend)) as client:
        refused = client.post("/api/search", json={"question": CASPIAN})
        assert refused.status_code == 409 and "No index yet" in refused.json()["error"]
        assert str(tmp_path) not in refused.text
        assert client.get("/api/documents").json() == []


def test_the_gradio_api_refuses_the_same_values_with_the_same_message(shared):
    client, _ = shared
    event, data = gradio_call(client, "search", [CASPIAN, -3])
    assert event == "error" and "k must be a whole number from 1 to 100, not -3." in data
    event, data = gradio_call(client, "search", [CASPIAN, 2])
    assert event == "complete" and '"rank": 2' in data
    event, data = gradio_call(client, "ask", ["x" * 5000, None])
    assert event == "error" and "at most 2,000" in data


def test_gradio_forgets_the_least_recent_sessions_beyond_its_capacity(backend, monkeypatch):
    """Each call of Gradio's HTTP API is a session of its own, whose state Gradio keeps: without
    a bound, memory grew with every call (issue #17's soak)."""
    monkeypatch.setattr(api, "UI_SESSIONS", 4)
    app = server_app(backend.root, backend=backend)
    (gradio,) = [route.app for route in app.app.routes if hasattr(getattr(route, "app", None), "state_holder")]
    with TestClient(app) as client:
        for _ in range(10):
            assert gradio_call(client, "search", [CASPIAN, 2])[0] == "complete"
    assert 0 < len(gradio.state_holder.session_data) <= 4


def test_gradio_sessions_put_their_arrow_strings_on_the_servers_malloc(backend):
    """Each new session copies the Documents table through pandas into Arrow strings. Arrow's
    own allocator (mimalloc) kept what was freed: most of the soak's memory growth (issue #17)."""
    pyarrow = pytest.importorskip("pyarrow")
    try:
        pyarrow.set_memory_pool(pyarrow.mimalloc_memory_pool())  # Arrow's default, whatever ran before
    except NotImplementedError:
        pytest.skip("this pyarrow has no mimalloc")
    system, mimalloc = pyarrow.system_memory_pool(), pyarrow.mimalloc_memory_pool()
    before = system.num_allocations(), mimalloc.num_allocations()
    with TestClient(server_app(backend.root, backend=backend)) as client:
        for _ in range(3):
            assert gradio_call(client, "search", [CASPIAN, 2])[0] == "complete"
    on_system, on_mimalloc = system.num_allocations() - before[0], mimalloc.num_allocations() - before[1]
    assert pyarrow.default_memory_pool().backend_name == "system"
    assert on_system > 10 * on_mimalloc


def test_a_password_guards_both_apis_and_failed_logins_are_limited(backend, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    app = server_app(backend.root, PASSWORD, backend=backend)
    with TestClient(app) as client:
        assert client.get("/api/documents").status_code == 401
        assert client.get("/api/documents", auth=("cite", PASSWORD)).status_code == 200
        assert client.post("/gradio_api/call/documents", json={"data": []}).status_code == 401
        assert client.post("/login", data={"username": "cite", "password": PASSWORD}).json() == {"success": True}
        assert gradio_call(client, "documents", [])[0] == "complete"  # the login's cookie
        client.cookies.clear()
        for _ in range(guard.LOGIN_FAILURES - 1):
            assert client.post("/login", data={"username": "cite", "password": PASSWORD + "x"}).status_code == 400
        assert client.get("/api/documents", auth=("cite", "guess")).status_code == 401  # one counter, both doors
        locked = client.post("/login", data={"username": "cite", "password": PASSWORD})
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
        assert "try again in" in locked.json()["error"]
        assert client.get("/api/documents", auth=("cite", PASSWORD)).status_code == 429
    logged = caplog.text + "".join(capfd.readouterr())
    assert PASSWORD not in logged and PASSWORD.replace(" ", "+") not in logged


def test_messages_for_remote_clients_name_no_server_folder(backend):
    message = f"The index at {backend.root} was built with another model."
    assert backend.public_message(message) == "The index at the index folder was built with another model."
