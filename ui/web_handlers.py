"""The chat UI's event handlers: each is a plain function of a Backend and the event's inputs
that returns its outputs by name (`Outputs`), so it can be called and tested without a page;
`ui.web` lays out the components and connects these names to them.

Every input goes through `ui.validate` first; a refusal (CiteError) is shown in the page.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

import gradio as gr
from cite.core.errors import CiteError
from cite.core.serialize import answer_json, hits_json
from cite.ui import render, validate
from cite.ui.backend import Backend

Outputs = dict[str, Any]
"""A handler's result: a value (or gr.update) per output name; a name left out stays as it is."""

NO_CITATION_OPEN = '<div class="empty">Click a citation to see it in its document.</div>'


def _error(message: str = "") -> dict[str, Any]:
    """An error line's update: the message shown, or (no message) the line hidden."""
    return gr.update(value=f"⚠ {message}" if message else "", visible=bool(message))


def shows_errors(into: str, **on_error: Any) -> Callable[[Callable[..., Outputs]], Callable[..., Outputs]]:
    """A handler whose CiteError is shown in the page rather than raised.

    Args:
        into: the output that shows the error's message (made visible).
        **on_error: the outputs to reset when it fails; the rest stay as they are.
    """

    def decorate(handler: Callable[..., Outputs]) -> Callable[..., Outputs]:
        @functools.wraps(handler)
        def guarded(*args: Any, **kwargs: Any) -> Outputs:
            try:
                return handler(*args, **kwargs)
            except CiteError as error:
                return {**copy.deepcopy(on_error), into: _error(str(error))}

        return guarded

    return decorate


@shows_errors("error", answer=None)
def respond(backend: Backend, message: str, history: list[dict[str, Any]] | None) -> Outputs:
    """Ask tab: answers `message` as a follow-up to the user's earlier questions in `history`."""
    earlier = validate.history(history)  # Gradio's Chatbot sends each message's content as text parts
    history = history or []
    answer = backend.engine().ask(validate.question(message), history=earlier)
    choices = [(f"[{c.n}] {c.doc} · {c.start:,}–{c.end:,}", str(c.n)) for c in answer.citations]
    first = choices[0][1] if choices else None
    data = answer_json(answer)
    turn = [{"role": "user", "content": message}, {"role": "assistant", "content": render.chat_message(answer)}]
    return {
        "chat": history + turn,
        "question": "",
        "sources": render.sources_panel(answer),
        "citation_pick": gr.update(choices=choices, value=first, visible=bool(choices)),
        "document": citation_document(backend, data, first),
        "error": _error(),
        "answer": data,
    }


def open_citation(backend: Backend, n: str | None, answer: dict[str, Any] | None) -> Outputs:
    """Ask tab: citation `n` of the answer (its JSON) shown in its whole document."""
    return {"document": citation_document(backend, answer, n)}


def clear_conversation() -> Outputs:
    return {
        "chat": [],
        "sources": render.sources_panel(None),
        "citation_pick": gr.update(choices=[], value=None, visible=False),
        "answer": None,
        "error": _error(),
    }


def citation_document(backend: Backend, answer: dict[str, Any] | None, n: str | None) -> str:
    """The cited document with all of the answer's spans in it marked and citation `n` highlighted."""
    if not answer or n is None:
        return NO_CITATION_OPEN
    citations = answer["citations"]
    chosen = next((c for c in citations if str(c["n"]) == str(n)), None)
    if chosen is None:
        return '<div class="empty">That citation is gone; ask again.</div>'
    text = _document_text(backend, chosen["doc"])
    if text is None:
        return f'<div class="empty">{escape(chosen["doc"])} is no longer indexed.</div>'
    spans = [(c["start"], c["end"]) for c in citations if c["doc"] == chosen["doc"]]
    view = render.document_view(chosen["doc"], text, spans, (chosen["start"], chosen["end"]))
    page = chosen.get("page")
    png = backend.page_image(chosen["doc"], page, (chosen["start"], chosen["end"])) if page else None
    return render.page_view(png, chosen["doc"], page) + view if png else view


@shows_errors("error", hits=[])
def show_results(backend: Backend, text: str, k: float) -> Outputs:
    """Search tab: the passages that state `text`, best first."""
    text, k = validate.query(text), validate.k(k)
    engine = backend.engine()
    snapshot = engine.snapshot()  # the hits and the texts shown with them from one version
    hits = engine.search(text, k, snapshot=snapshot)
    choices = [(f"#{i} {h.passage.doc} · {h.passage.start:,}–{h.passage.end:,}", str(i)) for i, h in enumerate(hits, 1)]
    return {
        "results": render.hits_list(hits, render.document_texts(snapshot.index.documents, hits)),
        "pick": gr.update(choices=choices, value=None, visible=bool(hits)),
        "document": "",
        "hits": hits_json(hits),
        "error": _error(),
    }


def open_result(backend: Backend, choice: str | None, hits: list[dict[str, Any]]) -> Outputs:
    """Search tab: result number `choice` shown in its whole document."""
    if not choice or not hits:
        return {"document": ""}
    hit = hits[int(choice) - 1]
    text = _document_text(backend, hit["doc"])
    if text is None:
        return {"document": f'<div class="empty">{escape(hit["doc"])} is no longer indexed.</div>'}
    # The passage is marked; the sentence closest to the query is the highlight.
    sentence = hit.get("sentence")
    current = (sentence["start"], sentence["end"]) if sentence else (hit["start"], hit["end"])
    return {"document": render.document_view(hit["doc"], text, [(hit["start"], hit["end"])], current)}


def _document_text(backend: Backend, doc: str) -> str | None:
    """A document's original text; None once it is no longer indexed (or no index is left)."""
    try:
        return backend.engine().snapshot().index.documents[doc].text
    except (CiteError, KeyError):
        return None


@shows_errors("status", files=None)
def add_files(backend: Backend, paths: list[str] | None, progress: Any = gr.Progress()) -> Outputs:
    """Documents tab: indexes the uploaded files once the changes queued before them are done
    (their place in the queue, then the embedding's progress, in the progress bar)."""
    validate.uploads(paths)  # refused before it queues

    def report(done: int, total: int) -> None:
        progress(done / max(total, 1), desc=f"Embedding {done}/{total}")

    changed, problems = backend.add_files(paths, report, _queue_status(progress))
    lines = [f"✓ Indexed {render.markdown_text(name)}" for name in changed]
    lines += [f"⚠ Skipped {render.markdown_text(problem)}" for problem in problems]
    return {"status": "\n\n".join(lines), **_document_list(backend), "files": None}


@shows_errors("status")
def remove_documents(backend: Backend, selected: list[str] | None, progress: Any = gr.Progress()) -> Outputs:
    """Documents tab: takes the selected documents out of the index, in the writers' queue."""
    validate.document_names(selected)
    removed = backend.remove(selected, _queue_status(progress))
    lines = [f"✓ Removed {render.markdown_text(name)}" for name in removed]
    return {"status": "\n\n".join(lines), **_document_list(backend)}


def _queue_status(progress: Any) -> Callable[[str], None]:
    """Shows a waiting change's place in the writers' queue in its progress bar."""
    return lambda status: progress(0, desc=status)


def _document_list(backend: Backend) -> Outputs:
    return {"table": backend.document_rows(), "names": gr.update(choices=backend.document_names(), value=[])}


def show_documents(backend: Backend) -> Outputs:
    """Documents tab, when opened: what is indexed now (`cite index` may have changed it)."""
    return {"table": backend.document_rows(), "names": gr.update(choices=backend.document_names())}


def sync_state(backend: Backend) -> str:
    """The folders kept in sync, the last sync and what waits; "" when nothing is watched."""
    return f"⟳ {render.markdown_text(backend.sync.state().describe())}" if backend.sync else ""


def show_sync(backend: Backend) -> Outputs:
    """Documents tab, every few seconds while folders are watched: the sync state and the list."""
    return {"sync": sync_state(backend), "table": backend.document_rows()}


@shows_errors("table", plot=gr.update(visible=False))
def run_eval(backend: Backend, path: str | None, tune_too: bool, progress: Any = gr.Progress()) -> Outputs:
    """Eval tab: retrieval accuracy on the questions in `path` (None: the seed questions),
    and (`tune_too`) fusion weights tuned on them, saved only when they win held out."""
    from cite.eval.datasets import SEED_QUESTIONS
    from cite.eval.report import format_table, write_report
    from cite.eval.suite import evaluate_questions, tune_questions
    from cite.eval.tune import save_if_better

    progress(0, desc="Running the questions")
    questions_path = Path(path) if path else SEED_QUESTIONS
    engine = backend.engine()
    report = evaluate_questions(questions_path, backend.root, backend.embedder, engine.settings)
    text = f"```\n{format_table(report)}\n```\n"
    if tune_too:
        progress(0.5, desc="Tuning the fusion weights")
        tuning = tune_questions(questions_path, backend.root, backend.embedder, engine.settings)
        text += f"```\n{save_if_better(tuning, backend.root, engine.settings)}\n```\n"
        backend.reload_settings()
    markdown, png = write_report(report, backend.reports)
    return {"table": f"{text}Report: `{markdown}`", "plot": gr.update(value=str(png), visible=True)}
