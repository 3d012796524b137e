"""The chat UI (Gradio): answers with citations a person can click and check.

Tabs: Ask (chat + sources + the cited document), Search (citation lookup), Documents
(list, upload, remove; incremental indexing with progress), Eval (retrieval accuracy).
The same functions are Gradio HTTP endpoints for programs (/ask, /search, /documents);
`ui.server` assembles this page with the JSON API, OpenAI chat and MCP behind one door.
Every input goes through `ui.validate` first, whichever door it came in by.

`ui.web_handlers` holds each event's handler, a plain function of a Backend and the inputs
that returns its outputs by name; the tab builders here only lay out components and connect
names to them, so the handlers can be called and tested without a page.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

import gradio as gr
from cite.core.errors import CiteError
from cite.core.serialize import answer_json, hits_json
from cite.indexer.loaders import DOCUMENT_SUFFIXES
from cite.ui import render, validate
from cite.ui.backend import DOCUMENT_COLUMNS, Backend
from cite.ui.web_handlers import (
    NO_CITATION_OPEN,
    Outputs,
    add_files,
    clear_conversation,
    open_citation,
    open_result,
    remove_documents,
    respond,
    run_eval,
    show_documents,
    show_results,
    show_sync,
    sync_state,
)

log = logging.getLogger(__name__)
SERVER_FAULT = "Something went wrong on the server (its log has the details); try again."

SCROLL_TO_CURRENT = """() => {
  const mark = document.querySelector('#doc-text mark.current');
  if (mark) { mark.scrollIntoView({block: 'center'}); }
}"""


def build_app(backend: Backend) -> gr.Blocks:
    with gr.Blocks(title="cite: answers you can check") as app:
        gr.HTML(
            '<div class="brand"><h1>cite</h1><span>answers you can check: every sentence '
            "cited to the exact place in your documents</span></div>"
        )
        with gr.Tabs():
            with gr.Tab("Ask", id="ask"):
                _ask_tab(backend)
            with gr.Tab("Search", id="search"):
                _search_tab(backend)
            with gr.Tab("Documents", id="documents") as documents_tab:
                _documents_tab(backend, documents_tab)
            with gr.Tab("Eval", id="eval"):
                _eval_tab(backend)

        def ask(question: str, history: list[str | dict[str, Any]] | None = None) -> dict[str, Any]:
            """The answer, its citations and claims, and the hits: `cite ask --json`'s shape."""
            return api_ask(backend, question, history)

        def search(question: str, k: int = validate.DEFAULT_K) -> dict[str, Any]:
            """Ranked passages with their places and scores: `cite search --json`'s shape."""
            return api_search(backend, question, k)

        def documents() -> list[dict[str, Any]]:
            """What is indexed."""
            return backend.document_records()

        gr.api(api_errors(ask, backend), api_name="ask")
        gr.api(api_errors(search, backend), api_name="search")
        gr.api(api_errors(documents, backend), api_name="documents")
    return app


# The HTTP API's functions (Gradio's /ask, /search, /documents and the JSON API's) --------


def api_ask(backend: Backend, question: Any, history: Any = None, k: Any = validate.DEFAULT_K) -> dict[str, Any]:
    """`cite ask --json`'s answer to `question`, a follow-up to the questions in `history`."""
    question, earlier, k = validate.question(question), validate.history(history), validate.k(k)
    return answer_json(backend.engine().ask(question, k, history=earlier))


def api_search(backend: Backend, question: Any, k: Any = validate.DEFAULT_K) -> dict[str, Any]:
    """`cite search --json`'s hits for `question`."""
    question, k = validate.query(question), validate.k(k)
    return {"hits": hits_json(backend.engine().search(question, k))}


def api_errors(function: Callable[..., Any], backend: Backend) -> Callable[..., Any]:
    """A Gradio API function whose refusals reach the client as their one-line message
    (gr.Error), and whose unexpected failures as a line that names no server path."""

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except CiteError as error:
            raise gr.Error(backend.public_message(str(error)), print_exception=False) from None
        except Exception:
            log.exception("%s failed", function.__name__)
            raise gr.Error(SERVER_FAULT, print_exception=False) from None

    return guarded


# Layout ---------------------------------------------------------------------------------


def _listen(
    trigger: Callable[..., Any], handler: Callable[..., Outputs], inputs: Any, outputs: Mapping[str, Any], *bound: Any
) -> Any:
    """Connects `handler(*bound, *inputs)` to an event; its values go to `outputs`' components by name."""

    def run(*values: Any) -> dict[Any, Any]:
        return {outputs[name]: value for name, value in handler(*bound, *values).items()}

    # Gradio reads the signature (how many inputs; where a gr.Progress() goes) and names the event after it.
    run.__signature__ = inspect.Signature(list(inspect.signature(handler).parameters.values())[len(bound) :])
    run.__name__ = handler.__name__
    return trigger(run, inputs, list(outputs.values()), api_visibility="private")


def _ask_tab(backend: Backend) -> None:
    answer_state = gr.State(None)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            # No LaTeX: a document's "$...$" is text, shown as written.
            chat = gr.Chatbot(label="Chat", height=460, elem_id="chat", buttons=["copy"], latex_delimiters=[])
            ask_error = gr.Markdown(visible=False, elem_id="ask-error", elem_classes=["error"])
            with gr.Row():
                question = gr.Textbox(
                    placeholder="Ask about your documents, e.g. Who proposed a CSO joint command?",
                    show_label=False,
                    scale=5,
                    elem_id="question",
                    autofocus=True,
                )
                send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask-button")
            clear = gr.Button("New conversation", size="sm", elem_id="clear")
        with gr.Column(scale=2):
            gr.Markdown("### Sources")
            citation_pick = gr.Radio(
                label="Open a citation in its document", choices=[], elem_id="citation-pick", visible=False
            )
            sources = gr.HTML(render.sources_panel(None), elem_id="sources")
    with gr.Accordion("Document", open=True, elem_id="document-panel"):
        document = gr.HTML(NO_CITATION_OPEN, elem_id="document")

    outputs = {
        "chat": chat,
        "question": question,
        "sources": sources,
        "citation_pick": citation_pick,
        "document": document,
        "error": ask_error,
        "answer": answer_state,
    }
    for trigger in (send.click, question.submit):
        _listen(trigger, respond, [question, chat], outputs, backend).then(None, js=SCROLL_TO_CURRENT)
    _listen(citation_pick.input, open_citation, [citation_pick, answer_state], {"document": document}, backend).then(
        None, js=SCROLL_TO_CURRENT
    )
    _listen(
        clear.click,
        clear_conversation,
        None,
        {k: outputs[k] for k in ("chat", "sources", "citation_pick", "answer", "error")},
    )


def _search_tab(backend: Backend) -> None:
    hits_state = gr.State([])
    gr.Markdown("Citation lookup: type a phrase or a claim; get the passages that state it, ranked, with their places.")
    with gr.Row():
        query = gr.Textbox(
            show_label=False, placeholder="e.g. Nine countries signed the treaty", scale=5, elem_id="search-query"
        )
        k = gr.Slider(1, 30, value=8, step=1, label="passages", scale=1)
        go = gr.Button("Search", variant="primary", scale=1, elem_id="search-button")
    search_error = gr.Markdown(visible=False, elem_classes=["error"], elem_id="search-error")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            results = gr.HTML('<div class="empty">Results appear here.</div>', elem_id="search-results")
        with gr.Column(scale=2):
            pick = gr.Radio(label="Open a result in its document", choices=[], visible=False, elem_id="result-pick")
            document = gr.HTML(elem_id="search-document")

    outputs = {"results": results, "pick": pick, "document": document, "hits": hits_state, "error": search_error}
    for trigger in (go.click, query.submit):
        _listen(trigger, show_results, [query, k], outputs, backend)
    _listen(pick.input, open_result, [pick, hits_state], {"document": document}, backend).then(
        None, js=SCROLL_TO_CURRENT
    )


def _documents_tab(backend: Backend, tab: gr.Tab) -> None:
    table = gr.Dataframe(
        headers=list(DOCUMENT_COLUMNS), value=backend.document_rows(), interactive=False, elem_id="documents-table"
    )
    with gr.Row(equal_height=False):
        with gr.Column():
            files = gr.File(
                label="Add documents (" + ", ".join(sorted(DOCUMENT_SUFFIXES)) + ")",
                file_count="multiple",
                elem_id="upload",
            )
            add = gr.Button("Add to index", variant="primary", elem_id="add-button")
        with gr.Column():
            names = gr.Dropdown(
                label="Remove documents", multiselect=True, choices=backend.document_names(), elem_id="remove-pick"
            )
            remove = gr.Button("Remove from index", variant="stop", elem_id="remove-button")
    status = gr.Markdown(elem_id="documents-status")
    sync = gr.Markdown(sync_state(backend), elem_id="sync-status", visible=backend.sync is not None)
    ticks = gr.Timer(2.0, active=backend.sync is not None)  # only while folders are watched

    listing = {"table": table, "names": names}
    _listen(add.click, add_files, files, {"status": status, **listing, "files": files}, backend)
    _listen(remove.click, remove_documents, names, {"status": status, **listing}, backend)
    _listen(tab.select, show_documents, None, listing, backend)
    _listen(ticks.tick, show_sync, None, {"sync": sync, "table": table}, backend)


def _eval_tab(backend: Backend) -> None:
    gr.Markdown(
        "Retrieval accuracy on this index: the seed questions, or your own JSONL file of "
        '`{"id", "question", "doc", "evidence"}` lines (`evidence: null` for questions the documents cannot answer).'
    )
    with gr.Row():
        questions = gr.File(
            label="Question file (.jsonl); empty: the seed questions", file_types=[".jsonl"], elem_id="eval-file"
        )
        with gr.Column():
            tune = gr.Checkbox(
                label="Also tune the fusion weights on these questions (saved with the index only when "
                "they win on questions they were not tuned on)",
                elem_id="eval-tune",
            )
            run = gr.Button("Run eval", variant="primary", elem_id="eval-button")
    table = gr.Markdown(elem_id="eval-table")
    plot = gr.Image(label="Recall@k", type="filepath", elem_id="eval-plot", visible=False)
    _listen(run.click, run_eval, [questions, tune], {"table": table, "plot": plot}, backend)


CSS = """
.brand {display:flex; align-items:baseline; gap:14px; margin:4px 0 2px}
.brand h1 {margin:0; font-size:28px; letter-spacing:-0.5px}
.brand span {color:var(--body-text-color-subdued)}
.card {border:1px solid var(--border-color-primary); border-radius:8px; padding:10px 12px; margin:0 0 10px;
       background:var(--background-fill-secondary)}
.card-head {font-size:13px; color:var(--body-text-color-subdued); margin-bottom:6px}
.marker {font-weight:700; color:var(--color-accent); margin-right:4px}
.passage {font-size:14px; line-height:1.5}
.passage mark, .doc-text mark.current {background:#ffe58a; color:#111; padding:1px 0; border-radius:2px}
.doc-text mark.cited {background:#fff3c4; color:#111}
.scores {font-size:12px; color:var(--body-text-color-subdued); margin-top:6px}
.doc-title {font-weight:700; margin-bottom:6px}
.page-view {margin-bottom:10px}
.page-view img {max-width:100%; border:1px solid var(--border-color-primary); border-radius:8px}
.doc-text {white-space:pre-wrap; font-size:14px; line-height:1.55; max-height:420px; overflow-y:auto;
           border:1px solid var(--border-color-primary); border-radius:8px; padding:12px;
           background:var(--background-fill-primary)}
.empty {color:var(--body-text-color-subdued); font-style:italic; padding:8px 0}
.abstain-note {font-weight:600; margin-bottom:8px}
.error p {color:#b42318; font-weight:600}
"""
