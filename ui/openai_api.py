"""An OpenAI-compatible chat endpoint, so any chat front end that speaks OpenAI's API (Open WebUI,
LibreChat, the `openai` client) gets cite's cited answers.

    GET  /v1/models             -> the index, as one model: MODEL_ID
    POST /v1/chat/completions   -> {"model", "messages", "stream"?, "stream_options"?, "k"?}

The last user message is the question and the user messages before it are the history (a
follow-up is made standalone first, as in the UI); OpenAI's other fields (temperature,
max_tokens, top_p, n, user, tools, ...) are accepted and ignored; `k` (passages retrieved) is
cite's own. The reply is OpenAI's `chat.completion` (or its `chat.completion.chunk` stream):

- `message.content`: the answer with its [n] markers, then a "Sources:" list, one line per
  citation (`- [n] document, p. 3, §Section: "quote"`), so a plain chat UI shows them. An
  abstention says the documents don't answer it and lists the closest passages.
- `message.citations`: the exact citations, `core.serialize.answer_json`'s list (n, doc,
  start, end, page, last_page, section, quote), each quote its document's text[start:end].
- `message.cite`: the whole `answer_json` (`cite ask --json`: claims, hits, confidence).
- Streaming: a role chunk, the content in a few chunks, then a final chunk whose `delta`
  carries `citations` and `cite` with `finish_reason: "stop"`, then `data: [DONE]`.
- `usage`: estimated, about four characters a token (cite runs no tokenizer).

Refusals are OpenAI's `{"error": {"message", "type", "param", "code"}}` with the status the
`openai` client maps to its typed errors (400 a bad value, 404 an unknown model, 409 nothing
indexed yet, 500 a fault, whose details go to the log only).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from cite.core.errors import BadQuestion, CiteError, IndexMissing
from cite.core.serialize import answer_json
from cite.core.text import normalise
from cite.core.types import Answer
from cite.ui import validate
from cite.ui.backend import Backend
from cite.ui.render import page_label, section_title
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

MODEL_ID = "cite"
SERVER_FAULT = "Something went wrong on the server (its log has the details); try again."
CHARS_PER_TOKEN = 4  # OpenAI's rule of thumb for English, for `usage`
QUOTE_CHARS = 500  # a quote shown in the content is clipped here (the citation keeps it whole)
PASSAGE_CHARS = 200  # likewise a closest passage under an abstention
CLOSEST_PASSAGES = 3
ROLES_READ = ("user", "assistant", "system")  # what ui.validate.history reads
OTHER_ROLES = ("developer", "tool", "function")  # OpenAI's others: read as system messages (checked, not kept)


class UnknownModel(CiteError):
    """A model id other than MODEL_ID: OpenAI's 404 `model_not_found`."""


# Schema -----------------------------------------------------------------------------------


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """OpenAI's chat request: the fields cite reads; the others are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(description=f"`{MODEL_ID}` (GET /v1/models)")
    messages: list[Any] = Field(
        description="OpenAI's {role, content} messages: the last user message is the question, "
        "the user messages before it the history"
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    k: int = Field(validate.DEFAULT_K, description="passages retrieved (cite's own field)")

    _k = field_validator("k", mode="before")(lambda value: validate.k(value))


# The router -------------------------------------------------------------------------------


def openai_router(backend: Backend) -> APIRouter:
    """The /v1 routes; include it in the app before the Gradio UI is mounted at /.

    Every refusal, including a body FastAPI's parser rejects, is in OpenAI's error shape
    (the app's own handlers answer `{"error": message}`, whose message the `openai` client does not show).
    """
    router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], route_class=_refusing_as_openai(backend))
    started = int(time.time())

    @router.get("/models")
    def models() -> JSONResponse:
        """The index, as the one model a chat front end can pick."""
        return JSONResponse({"object": "list", "data": [_model(started)]})

    @router.get("/models/{model}")
    def model(model: str) -> JSONResponse:
        _check_model(model)
        return JSONResponse(_model(started))

    @router.post("/chat/completions", response_model=None)
    def chat_completions(request: ChatRequest) -> Response:
        """The cited answer to the last user message, as OpenAI's chat completion (or its stream)."""
        _check_model(request.model)
        question, history = conversation(request.messages)
        answer = backend.engine().ask(question, request.k, history=history)  # a sync route: in a thread
        reply = Reply.of(answer, prompt_chars=sum(len(text) for text in _texts(request.messages)))
        if not request.stream:
            return JSONResponse(reply.completion())
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        return StreamingResponse(
            _events(reply.chunks(include_usage)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router


def conversation(messages: Any) -> tuple[str, list[str]]:
    """The question (the last user message's text) and the history (the user messages before it).

    Messages of roles ui.validate does not know (developer, tool, function) are read as system
    messages and tool calls' empty content as "": they are checked for size, not kept.

    Raises:
        BadInput: no user message, or a message ui.validate.history refuses.
        BadQuestion: an empty question.
    """
    if not isinstance(messages, list) or not messages:
        raise validate.BadInput(
            'messages must be a non-empty list of {"role", "content"} messages; the last user message is the question.'
        )
    turns = [_as_turn(message) for message in messages]
    users = [n for n, turn in enumerate(turns) if isinstance(turn, str) or turn.get("role") == "user"]
    if not users:
        raise validate.BadInput('The messages have no {"role": "user"} message: the last user message is the question.')
    last = users[-1]
    history = validate.history(turns[:last])
    return validate.question(_text(turns[last])), history


def _text(turn: Any) -> Any:
    """A message's text: its content, or its text parts joined (images add nothing); another
    value as it is, for ui.validate.question to refuse."""
    content = turn if isinstance(turn, str) else turn["content"]
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        texts = [part.get("text") for part in content if part.get("type") == "text"]
        if all(isinstance(text, str) for text in texts):
            return "\n".join(texts)
    return content


def _as_turn(message: Any) -> Any:
    """A message as ui.validate.history reads one; a malformed one as it is, for it to refuse."""
    if not isinstance(message, dict) or message.get("role") not in (*ROLES_READ, *OTHER_ROLES):
        return message
    role = message["role"] if message["role"] in ROLES_READ else "system"
    return {**message, "role": role, "content": message.get("content") or ""}


def _texts(messages: Sequence[Any]) -> list[str]:
    """Every message's text (for the usage estimate)."""
    texts = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else message
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
    return texts


def _model(created: int) -> dict[str, Any]:
    return {"id": MODEL_ID, "object": "model", "created": created, "owned_by": "cite"}


def _check_model(model: str) -> None:
    if model != MODEL_ID:
        raise UnknownModel(
            f"The model {_clipped(model, 40)!r} does not exist here; cite serves one model, "
            f"{MODEL_ID!r} (GET /v1/models lists it)."
        )


# The reply --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One answer as OpenAI's chat completion: its content in parts (the stream's chunks), and
    `answer_json` for the extra fields."""

    parts: tuple[str, ...]
    answer: dict[str, Any]
    prompt_chars: int  # the messages' text, for the usage estimate
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def of(cls, answer: Answer, prompt_chars: int) -> Reply:
        return cls(tuple(content_parts(answer)), answer_json(answer), prompt_chars)

    @property
    def content(self) -> str:
        return "".join(self.parts)

    def extras(self) -> dict[str, Any]:
        """cite's fields beside OpenAI's in the message (or the stream's last delta)."""
        return {"citations": self.answer["citations"], "cite": self.answer}

    def usage(self) -> dict[str, int]:
        prompt, completion = _tokens(self.prompt_chars), _tokens(len(self.content))
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def completion(self) -> dict[str, Any]:
        message = {"role": "assistant", "content": self.content, "refusal": None, **self.extras()}
        return {
            **self._head("chat.completion"),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
            "usage": self.usage(),
        }

    def chunks(self, include_usage: bool = False) -> list[dict[str, Any]]:
        """The stream: the role, the content a part a chunk, then the citations with `finish_reason`
        (and, when asked for with stream_options.include_usage, a last chunk with the usage)."""
        deltas = [{"role": "assistant", "content": ""}] + [{"content": part} for part in self.parts]
        chunks = [self._chunk(delta) for delta in deltas] + [self._chunk(self.extras(), "stop")]
        if include_usage:
            chunks.append({**self._head("chat.completion.chunk"), "choices": [], "usage": self.usage()})
        return chunks

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**self._head("chat.completion.chunk"), "choices": [choice]}

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": MODEL_ID}


def content_parts(answer: Answer) -> list[str]:
    """The message's Markdown in parts: the answer (or the abstention), any claim its citation
    does not support, then the sources. Text from the documents is escaped (`markdown_safe`)."""
    if answer.abstained:
        parts = [f"The documents don't answer this: no passage says it (confidence {answer.confidence:.2f})."]
        if answer.hits:
            parts.append("\n\nClosest passages (not enough to answer):")
        for hit in answer.hits[:CLOSEST_PASSAGES]:
            passage = hit.passage
            where = _where(passage.doc, passage.page, None, passage.section)
            parts.append(f'\n- {where}: "{markdown_safe(_clipped(passage.text, PASSAGE_CHARS))}"')
        return parts
    parts = [markdown_safe(answer.text or "", keep_markers=True)]
    for claim in answer.claims:
        if not claim.supported:
            parts.append(
                f"\n\n(Not supported by its citation, support {claim.support:.2f}: {markdown_safe(claim.text)})"
            )
    if answer.citations:
        parts.append("\n\nSources:")
    for c in answer.citations:
        parts.append(f'\n- [{c.n}] {_where(c.doc, c.page, c.end_page, c.section)}: "{_quote(c.quote)}"')
    return parts


def _where(doc: str, page: int | None, last_page: int | None, section: str) -> str:
    """`report.pdf, pp. 3–4, §Results`: the parts a reader cites, those the document has."""
    parts = [doc, page_label(page, last_page), f"§{section_title(section)}" if section else ""]
    return markdown_safe(", ".join(part for part in parts if part))


def _quote(quote: str) -> str:
    """A quote as read (hyphenated line breaks joined, on one line), clipped and escaped."""
    return markdown_safe(_clipped(normalise(quote).text, QUOTE_CHARS))


def _clipped(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_MARKER = re.compile(r"(?<!!)\[\d+\](?![(\[:])")  # cite's [n], not part of an image or link
_MARKDOWN_ACTIVE = str.maketrans({ch: "\\" + ch for ch in "\\[]<>`"})


def markdown_safe(text: str, keep_markers: bool = False) -> str:
    """`text` with a backslash before each of \\ [ ] < > ` : a chat UI's Markdown then makes no
    link, image, HTML or code span of a document's text (a generated answer's included), while
    a plain client sees the text nearly as it is (render.markdown_text escapes all punctuation).

    Args:
        keep_markers: leave cite's [n] markers as they are (except where a `!`, `(`, `[` or
            `:` beside one would make it part of an image, a link or a link definition).
    """
    if not keep_markers:
        return text.translate(_MARKDOWN_ACTIVE)
    pieces, at = [], 0
    for marker in _MARKER.finditer(text):
        pieces += [text[at : marker.start()].translate(_MARKDOWN_ACTIVE), marker.group()]
        at = marker.end()
    return "".join(pieces) + text[at:].translate(_MARKDOWN_ACTIVE)


def _tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


async def _events(chunks: list[dict[str, Any]]) -> AsyncIterator[str]:
    """Server-sent events as OpenAI sends them: `data: {chunk}` lines, then `data: [DONE]`."""
    for chunk in chunks:
        yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"


# Refusals ---------------------------------------------------------------------------------


def _refusing_as_openai(backend: Backend) -> type[APIRoute]:
    """A route class whose handler answers every exception with OpenAI's error shape."""

    class OpenAIRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    return await handler(request)
                except Exception as error:  # every refusal in one shape; a fault's details to the log
                    return refusal(error, backend.public_message, request)

            return handle

    return OpenAIRoute


def refusal(error: Exception, public: Callable[[str], str], request: Request | None = None) -> JSONResponse:
    """OpenAI's `{"error": {"message", "type", "param", "code"}}` for an exception, with its status.

    A refusal says not to retry (`x-should-retry: false`, which the `openai` client obeys): the
    same request would be refused again.
    """
    param, code = None, None
    if isinstance(error, RequestValidationError):
        status, kind, (message, param) = 400, "invalid_request_error", _invalid(error)
    elif isinstance(error, UnknownModel):
        status, kind, message, param, code = 404, "invalid_request_error", str(error), "model", "model_not_found"
    elif isinstance(error, validate.BadInput | BadQuestion):
        status, kind, message, param = 400, "invalid_request_error", str(error), "messages"
    elif isinstance(error, CiteError):
        status = 409 if isinstance(error, IndexMissing) else 400
        kind, message = "invalid_request_error", public(str(error))
    elif isinstance(error, HTTPException):
        status, kind, message = error.status_code, "invalid_request_error", str(error.detail)
    else:
        where = f"{request.method} {request.url.path}" if request is not None else "a /v1 request"
        log.error("%s failed", where, exc_info=error)
        status, kind, message = 500, "server_error", SERVER_FAULT
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers={"x-should-retry": "false"} if status < 500 else None)


def _invalid(error: RequestValidationError) -> tuple[str, str | None]:
    """(the first problem in one line, the field it is in): ui.validate's own message where it spoke."""
    problems = error.errors()
    if not problems:
        return "The request is not valid.", None
    first = problems[0]
    where = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, CiteError):
        return str(cause), where
    if first.get("type") == "json_invalid":
        return "The request body is not valid JSON.", None
    if first.get("type") == "missing":
        return (f"{where} is missing." if where else "The request needs a JSON body."), where
    return f"{where or 'body'}: {first.get('msg', 'not valid')}.", where
