"""The OpenAI-compatible endpoint (ui.openai_api) through the official `openai` client, on a real
socket: a uvicorn server in a thread, the fake embedder over a tiny corpus."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
from cite.core.errors import IndexMissing
from cite.core.types import Answer, Citation, Claim
from cite.ui import openai_api
from cite.ui.backend import Backend
from cite.ui.openai_api import MODEL_ID, SERVER_FAULT, content_parts, markdown_safe, openai_router
from fastapi import FastAPI

from tests.ui.helpers import CASPIAN, live_server, tiny_backend

SOURDOUGH = "How do I bake sourdough bread?"


@contextmanager
def serving(backend: Backend) -> Iterator[str]:
    """The router on a FastAPI app of its own, on a real socket; yields its /v1 URL."""
    app = FastAPI()
    app.include_router(openai_router(backend))
    with live_server(app) as url:
        yield f"{url}/v1"


def client_of(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, Backend]]:
    """(the /v1 URL, its backend), shared by the tests: they change nothing but what they monkeypatch."""
    backend = tiny_backend(tmp_path_factory.mktemp("openai"))
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("CITE_LLM_URL", raising=False)  # extractive, whatever the shell has set
        with serving(backend) as url:
            yield url, backend


@pytest.fixture
def client(served) -> openai.OpenAI:
    return client_of(served[0])


def ask(client: openai.OpenAI, *messages: dict, **options):
    return client.chat.completions.create(model=MODEL_ID, messages=list(messages), **options)


def user(text) -> dict:
    return {"role": "user", "content": text}


def assert_exact(citations: list[dict], backend: Backend) -> None:
    documents = backend.engine().snapshot().index.documents
    assert citations
    for c in citations:
        assert c["quote"] == documents[c["doc"]].text[c["start"] : c["end"]]


def test_the_index_is_one_model(client):
    (model,) = client.models.list().data
    assert (model.id, model.object, model.owned_by) == (MODEL_ID, "model", "cite")
    assert client.models.retrieve(MODEL_ID).id == MODEL_ID


def test_an_answer_shows_its_sources_and_carries_exact_citations(client, served):
    # OpenAI's fields cite has no use for are accepted and ignored
    completion = ask(client, user(CASPIAN), temperature=0.2, max_tokens=50, top_p=0.9, user="someone")
    (choice,) = completion.choices
    message = choice.message
    assert (choice.finish_reason, message.role, completion.model) == ("stop", "assistant", MODEL_ID)
    answer, sources = message.content.split("\n\nSources:\n")
    assert "Volga" in answer and answer.endswith("[1]")
    assert sources.startswith('- [1] rivers.md, §Rivers: "The Volga is the longest river in Europe.')
    assert "Caspian" in sources  # the quote as read: the hyphenated line break joined
    extra = message.model_extra
    assert_exact(extra["citations"], served[1])
    assert extra["cite"]["citations"] == extra["citations"] and extra["cite"]["abstained"] is False
    usage = completion.usage
    assert usage.prompt_tokens == 10  # len(CASPIAN) / 4, rounded up
    assert usage.completion_tokens > 0 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_a_stream_sends_the_same_content_then_the_citations(client, served):
    whole = ask(client, user(CASPIAN)).choices[0].message
    chunks = list(ask(client, user(CASPIAN), stream=True, stream_options={"include_usage": True}))
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    assert deltas[0].role == "assistant"
    assert "".join(delta.content or "" for delta in deltas) == whole.content
    last = [chunk for chunk in chunks if chunk.choices][-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.choices[0].delta.model_extra["citations"] == whole.model_extra["citations"]
    assert chunks[-1].usage.completion_tokens > 0 and not chunks[-1].choices
    assert len({chunk.id for chunk in chunks}) == 1

    # on the wire, as OpenAI sends it: data lines, each a JSON chunk, then [DONE]
    body = {"model": MODEL_ID, "messages": [user(CASPIAN)], "stream": True}
    with httpx.stream("POST", f"{served[0]}/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = response.read().decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(json.loads(event.removeprefix("data: "))["object"] == "chat.completion.chunk" for event in events[:-2])


def test_a_follow_up_reads_the_earlier_questions(client, served):
    earlier, follow_up = "Which is the longest river in Europe?", "And where does it flow?"
    first = ask(client, user(earlier)).choices[0].message
    reply = ask(
        client,
        {"role": "system", "content": "You are a helpful assistant."},
        user(earlier),
        {"role": "assistant", "content": first.content},
        user([{"type": "text", "text": follow_up}]),  # content as parts, as some UIs send it
    ).choices[0]
    citations = reply.message.model_extra["citations"]
    assert reply.finish_reason == "stop" and {c["doc"] for c in citations} == {"rivers.md"}
    assert_exact(citations, served[1])
    alone = ask(client, user(follow_up)).choices[0].message
    # the history made it "And where does it flow? (longest river Europe)": other scores
    assert reply.message.model_extra["cite"]["hits"] != alone.model_extra["cite"]["hits"]


def test_an_abstention_is_a_normal_reply(client):
    completion = ask(client, user(SOURDOUGH))
    (choice,) = completion.choices
    assert choice.finish_reason == "stop"
    assert choice.message.content.startswith("The documents don't answer this")
    assert "Closest passages (not enough to answer):\n- " in choice.message.content
    assert choice.message.model_extra["citations"] == [] and choice.message.model_extra["cite"]["abstained"]


@pytest.mark.parametrize(
    ("messages", "model", "error", "said"),
    [
        ([{"role": "system", "content": "Be brief."}], MODEL_ID, openai.BadRequestError, 'no {"role": "user"}'),
        ([], MODEL_ID, openai.BadRequestError, "non-empty list"),
        ([user("   ")], MODEL_ID, openai.BadRequestError, "The question is empty"),
        ([user("x" * 3000)], MODEL_ID, openai.BadRequestError, "The question is 3,000 characters long"),
        ([user("Hi"), user(42), user(CASPIAN)], MODEL_ID, openai.BadRequestError, "History message 2's content"),
        ([{"content": "Hi"}, user(CASPIAN)], MODEL_ID, openai.BadRequestError, "History message 1 must be"),
        ([user({"text": CASPIAN})], MODEL_ID, openai.BadRequestError, "The question must be text"),
        ([user(CASPIAN)], "gpt-4o", openai.NotFoundError, "The model 'gpt-4o' does not exist here"),
    ],
)
def test_bad_input_is_refused_in_openai_shape(client, messages, model, error, said):
    with pytest.raises(error) as raised:
        client.chat.completions.create(model=model, messages=messages)
    assert said in raised.value.message and raised.value.type == "invalid_request_error"
    assert raised.value.code == ("model_not_found" if model != MODEL_ID else None)
    assert raised.value.response.headers["x-should-retry"] == "false"


def test_a_body_the_parser_rejects_is_refused_in_openai_shape(client, served):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=MODEL_ID, messages=[user(CASPIAN)], extra_body={"k": 0})
    assert "k must be a whole number from 1 to 100" in raised.value.message and raised.value.param == "k"
    sent = httpx.post(f"{served[0]}/chat/completions", content=b"{", headers={"content-type": "application/json"})
    assert sent.status_code == 400
    assert sent.json()["error"]["message"] == "The request body is not valid JSON."
    missing = httpx.post(f"{served[0]}/chat/completions", json={"messages": [user(CASPIAN)]}).json()["error"]
    assert (missing["message"], missing["param"]) == ("model is missing.", "model")


def test_the_index_missing_and_a_fault_are_one_line_without_the_server_paths(client, served, monkeypatch, caplog):
    backend = served[1]

    def no_index():
        raise IndexMissing(f"No index in {backend.root}; run `cite index`.")

    monkeypatch.setattr(backend, "engine", no_index)
    with pytest.raises(openai.ConflictError) as raised:
        ask(client, user(CASPIAN))
    assert "No index in the index folder" in raised.value.message and str(backend.root) not in raised.value.message

    def fault():
        raise RuntimeError(f"{Path(openai_api.__file__)} broke")

    monkeypatch.setattr(backend, "engine", fault)
    with pytest.raises(openai.InternalServerError) as raised:
        ask(client, user(CASPIAN))
    assert raised.value.message == f"Error code: 500 - {SERVER_FAULT}" and raised.value.type == "server_error"
    assert "broke" in caplog.text  # the details are in the log


def test_the_content_names_pages_and_neutralises_markdown():
    quote = "Costs rose [see ![x](http://e.xa/m)] in <b>2024</b>,\nthen fell."
    citation = Citation(1, "report.pdf", 0, len(quote), quote, page=3, section="Results", last_page=4)
    claim = Claim("Costs rose.", (1,), supported=False, support=0.31)
    text = "Costs rose [1]. See [2](http://e.xa) and ![3](http://e.xa/i.png) `code`."
    content = "".join(content_parts(Answer(text, (citation,), (claim,), (), 0.8, abstained=False)))
    assert content.startswith(r"Costs rose [1]. See \[2\](http://e.xa) and !\[3\](http://e.xa/i.png) \`code\`.")
    assert "(Not supported by its citation, support 0.31: Costs rose.)" in content
    assert content.endswith(
        r'- [1] report.pdf, pp. 3–4, §Results: "Costs rose \[see !\[x\](http://e.xa/m)\] '
        r'in \<b\>2024\</b\>, then fell."'
    )
    assert markdown_safe(r"a\b") == r"a\\b"


@pytest.mark.slow
def test_the_real_model_answers_through_the_openai_client(seed_index, real_embedder, tmp_path, monkeypatch):
    monkeypatch.delenv("CITE_LLM_URL", raising=False)
    backend = Backend(seed_index, real_embedder, reports=tmp_path / "reports")
    with serving(backend) as url:
        message = ask(client_of(url), user("Who publishes the Monitor?")).choices[0].message
    assert "Jamestown Foundation" in message.content.split("\n\nSources:")[0]
    citations = message.model_extra["citations"]
    assert_exact(citations, backend)
    assert any("Jamestown Foundation" in c["quote"] for c in citations)
