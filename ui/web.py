"""The chat UI (Gradio): answers with citations a person can click and check.

Tabs: Ask (chat + sources + the cited document), Search (citation lookup), Documents
(list, upload, remove; incremental indexing with progress), Eval (retrieval accuracy).
The same functions are HTTP endpoints for programs: /ask, /search, /documents.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import gradio as gr

from core.config import Settings, SplitSettings, load_settings
from core.embedder import Embedder, default_embedder
from core.errors import CiteError, IndexMissing
from core.serialize import answer_json, hits_json
from core.store import current_version, read_manifest
from indexer.build import build_index
from indexer.loaders import DOCUMENT_SUFFIXES, load_paths
from retriever.engine import Engine
from retriever.generate import chat_model_from_env
from ui import render

UPLOAD_PREFIX = "uploads/"
DOCUMENT_COLUMNS = ("document", "passages", "characters", "indexed", "source")
SCROLL_TO_CURRENT = """() => {
  const mark = document.querySelector('#doc-text mark.current');
  if (mark) { mark.scrollIntoView({block: 'center'}); }
}"""


class Backend:
    """What the UI's handlers share: the index folder, the embedder, and a live Engine."""

    def __init__(self, root: Path, embedder: Embedder | None = None, settings: Settings | None = None) -> None:
        self.root = Path(root)
        self._embedder = embedder
        self.settings = settings or load_settings(self.root)
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    def reload_settings(self) -> None:
        """Picks up the index's settings.toml (after tuning): the next question uses them."""
        with self._lock:
            self.settings = load_settings(self.root)
            self._engine = None

    def engine(self) -> Engine:
        """The engine over the newest index; IndexMissing until one has been built."""
        with self._lock:
            if self._engine is None:
                if current_version(self.root) is None:
                    raise IndexMissing(
                        f"No index at {self.root} yet: add documents in the Documents tab, or run `cite index`."
                    )
                self._engine = Engine(self.root, self.embedder, self.settings, chat_model_from_env())
            return self._engine

    def document_rows(self) -> list[list[Any]]:
        if current_version(self.root) is None:
            return []
        manifest = read_manifest(self.root)
        return [
            [r.doc, r.passages, f"{r.chars:,}", r.indexed_at.replace("T", " ")[:19], _source_label(r.source)]
            for r in sorted(manifest.documents.values(), key=lambda r: r.doc)
        ]

    def add_files(self, paths: Sequence[str], progress=None) -> tuple[list[str], list[str]]:
        """Indexes uploaded files as `uploads/<name>`; returns (added or changed, problems)."""
        problems, documents = [], []
        for path in paths:
            loaded = load_paths([Path(path)])
            problems += [f"{Path(s.path).name}: {s.reason}" for s in loaded.skipped]
            documents += [_as_upload(d) for d in loaded.documents]
        if not documents:
            return [], problems or ["No file to add."]
        report = build_index(documents, self.root, self.embedder, SplitSettings(**self._split()), progress, scope=set())
        return report.added + report.changed, problems

    def remove(self, names: Sequence[str]) -> list[str]:
        report = build_index([], self.root, self.embedder, SplitSettings(**self._split()), scope=set(), remove=names)
        return report.removed

    def _split(self) -> dict[str, Any]:
        """Keep the index's own split settings, so adding a file never re-embeds the rest."""
        if current_version(self.root) is None:
            return {}
        return read_manifest(self.root).split


def _as_upload(document):
    from dataclasses import replace

    return replace(document, doc=UPLOAD_PREFIX + Path(document.doc).name, source="upload")


def _source_label(source: str) -> str:
    return "upload" if source == "upload" else (Path(source).name or source)


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

        def ask(question: str, history: list[str] | None = None) -> dict[str, Any]:
            """The answer, its citations and claims, and the hits: `cite ask --json`'s shape."""
            return answer_json(backend.engine().ask(question, history=history or ()))

        def search(question: str, k: int = 10) -> dict[str, Any]:
            """Ranked passages with their places and scores: `cite search --json`'s shape."""
            return {"hits": hits_json(backend.engine().search(question, int(k)))}

        def documents() -> list[dict[str, Any]]:
            """What is indexed."""
            return [dict(zip(DOCUMENT_COLUMNS, row, strict=True)) for row in backend.document_rows()]

        gr.api(ask, api_name="ask")
        gr.api(search, api_name="search")
        gr.api(documents, api_name="documents")
    return app


def _error(message: str = "") -> Any:
    return gr.update(value=f"⚠ {message}" if message else "", visible=bool(message))


def _ask_tab(backend: Backend) -> None:
    answer_state = gr.State(None)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            chat = gr.Chatbot(label="Chat", height=460, elem_id="chat", buttons=["copy"])
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
        document = gr.HTML('<div class="empty">Click a citation to see it in its document.</div>', elem_id="document")

    def respond(message: str, history: list[dict[str, Any]]):
        history = history or []
        try:
            earlier = [m["content"] for m in history if m["role"] == "user" and isinstance(m["content"], str)]
            answer = backend.engine().ask(message, history=earlier)
        except CiteError as error:
            return history, message, gr.update(), gr.update(), gr.update(), _error(str(error)), None
        history = history + [
            {"role": "user", "content": message},
            {"role": "assistant", "content": render.chat_message(answer)},
        ]
        choices = [(f"[{c.n}] {c.doc} · {c.start:,}–{c.end:,}", str(c.n)) for c in answer.citations]
        first = choices[0][1] if choices else None
        data = answer_json(answer)
        return (
            history,
            "",
            render.sources_panel(answer),
            gr.update(choices=choices, value=first, visible=bool(choices)),
            _citation_document(backend, data, first),
            _error(),
            data,
        )

    outputs = [chat, question, sources, citation_pick, document, ask_error, answer_state]
    for trigger in (send.click, question.submit):
        trigger(respond, [question, chat], outputs, api_visibility="private").then(None, js=SCROLL_TO_CURRENT)

    citation_pick.input(
        lambda n, data: _citation_document(backend, data, n),
        [citation_pick, answer_state],
        document,
        api_visibility="private",
    ).then(None, js=SCROLL_TO_CURRENT)
    clear.click(
        lambda: ([], render.sources_panel(None), gr.update(choices=[], value=None, visible=False), None, _error()),
        None,
        [chat, sources, citation_pick, answer_state, ask_error],
        api_visibility="private",
    )


def _citation_document(backend: Backend, data: dict[str, Any] | None, n: str | None) -> str:
    if not data or n is None:
        return '<div class="empty">Click a citation to see it in its document.</div>'
    citations = data["citations"]
    chosen = next((c for c in citations if str(c["n"]) == str(n)), None)
    if chosen is None:
        return '<div class="empty">That citation is gone; ask again.</div>'
    try:
        text = backend.engine().index.documents[chosen["doc"]].text
    except (CiteError, KeyError):
        return f'<div class="empty">{escape(chosen["doc"])} is no longer indexed.</div>'
    spans = [(c["start"], c["end"]) for c in citations if c["doc"] == chosen["doc"]]
    return render.document_view(chosen["doc"], text, spans, (chosen["start"], chosen["end"]))


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

    def show_results(text: str, k_value: float):
        try:
            engine = backend.engine()
            hits = engine.search(text, int(k_value))
            texts = {h.passage.doc: engine.index.documents[h.passage.doc].text for h in hits}
        except CiteError as error:
            return gr.update(), gr.update(), gr.update(), [], _error(str(error))
        choices = [
            (f"#{i} {h.passage.doc} · {h.passage.start:,}–{h.passage.end:,}", str(i)) for i, h in enumerate(hits, 1)
        ]
        return (
            render.hits_list(hits, texts),
            gr.update(choices=choices, value=None, visible=bool(hits)),
            "",
            hits_json(hits),
            _error(),
        )

    def open_result(choice: str | None, hits: list[dict[str, Any]]):
        if not choice or not hits:
            return ""
        hit = hits[int(choice) - 1]
        try:
            text = backend.engine().index.documents[hit["doc"]].text
        except (CiteError, KeyError):
            return f'<div class="empty">{escape(hit["doc"])} is no longer indexed.</div>'
        # The passage is marked; the sentence closest to the query is the highlight.
        sentence = hit.get("sentence")
        current = (sentence["start"], sentence["end"]) if sentence else (hit["start"], hit["end"])
        return render.document_view(hit["doc"], text, [(hit["start"], hit["end"])], current)

    for trigger in (go.click, query.submit):
        trigger(show_results, [query, k], [results, pick, document, hits_state, search_error], api_visibility="private")
    pick.input(open_result, [pick, hits_state], document, api_visibility="private").then(None, js=SCROLL_TO_CURRENT)


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
                label="Remove documents", multiselect=True, choices=_names(backend), elem_id="remove-pick"
            )
            remove = gr.Button("Remove from index", variant="stop", elem_id="remove-button")
    status = gr.Markdown(elem_id="documents-status")

    def add_files(paths: list[str] | None, progress=gr.Progress()):
        if not paths:
            return "⚠ Choose one or more files first.", gr.update(), gr.update(), None

        def report(done: int, total: int) -> None:
            progress(done / max(total, 1), desc=f"Embedding {done}/{total}")

        try:
            changed, problems = backend.add_files(paths, report)
        except CiteError as error:
            return f"⚠ {error}", gr.update(), gr.update(), None
        lines = [f"✓ Indexed {name}" for name in changed] + [f"⚠ Skipped {p}" for p in problems]
        return "\n\n".join(lines), backend.document_rows(), gr.update(choices=_names(backend), value=[]), None

    def remove_documents(selected: list[str] | None):
        if not selected:
            return "⚠ Pick the documents to remove first.", gr.update(), gr.update()
        try:
            removed = backend.remove(selected)
        except CiteError as error:
            return f"⚠ {error}", gr.update(), gr.update()
        return (
            "\n\n".join(f"✓ Removed {name}" for name in removed),
            backend.document_rows(),
            gr.update(choices=_names(backend), value=[]),
        )

    add.click(add_files, files, [status, table, names, files], api_visibility="private")
    remove.click(remove_documents, names, [status, table, names], api_visibility="private")
    tab.select(
        lambda: (backend.document_rows(), gr.update(choices=_names(backend))),
        None,
        [table, names],
        api_visibility="private",
    )


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

    def run_eval(path: str | None, tune_too: bool, progress=gr.Progress()):
        from eval.datasets import SEED_QUESTIONS
        from eval.report import format_table, write_report
        from eval.suite import evaluate_questions, tune_questions
        from eval.tune import save_if_better

        progress(0, desc="Running the questions")
        questions_path = Path(path) if path else SEED_QUESTIONS
        try:
            engine = backend.engine()
            report = evaluate_questions(questions_path, backend.root, engine.embedder, engine.settings)
            text = f"```\n{format_table(report)}\n```\n"
            if tune_too:
                progress(0.5, desc="Tuning the fusion weights")
                tuning = tune_questions(questions_path, backend.root, engine.embedder, engine.settings)
                text += f"```\n{save_if_better(tuning, backend.root, engine.settings)}\n```\n"
                backend.reload_settings()
        except CiteError as error:
            return f"⚠ {error}", gr.update(visible=False)
        markdown, png = write_report(report, backend.root.parent / "reports")
        return f"{text}Report: `{markdown}`", gr.update(value=str(png), visible=True)

    run.click(run_eval, [questions, tune], [table, plot], api_visibility="private")


def _names(backend: Backend) -> list[str]:
    return [row[0] for row in backend.document_rows()]


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
.doc-text {white-space:pre-wrap; font-size:14px; line-height:1.55; max-height:420px; overflow-y:auto;
           border:1px solid var(--border-color-primary); border-radius:8px; padding:12px;
           background:var(--background-fill-primary)}
.empty {color:var(--body-text-color-subdued); font-style:italic; padding:8px 0}
.abstain-note {font-weight:600; margin-bottom:8px}
.error p {color:#b42318; font-weight:600}
"""


def serve(root: Path, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None) -> None:
    backend = Backend(root)
    try:
        backend.engine()  # load models before the first visitor, and fail loudly on a broken index
    except IndexMissing:
        pass  # the page says how to add documents
    app = build_app(backend)
    app.queue(default_concurrency_limit=4)
    app.launch(server_name=host, server_port=port, auth=auth, css=CSS, show_error=True, footer_links=["api"])
