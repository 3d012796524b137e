"""The web UI's handlers (ui/web_handlers.py) called directly, without a page: the fake
embedder over a tiny corpus for the plumbing, the real model over the seeds (slow) for what
a user reads."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import numpy as np
import pytest
from cite.core.config import SplitSettings
from cite.core.serialize import answer_json, hits_json
from cite.indexer.build import build_index
from cite.indexer.loaders import load_paths
from cite.ui import web, web_handlers
from cite.ui.backend import Backend
from cite.ui.render import markdown_text

from tests.ui.helpers import CASPIAN


def shown(update) -> str:
    """The text of an error line's update, asserting it is visible."""
    assert update["visible"] is True
    return update["value"]


def test_an_answer_fills_the_chat_sources_and_the_cited_document(backend):
    earlier = [{"role": "user", "content": "Tell me about bees."}, {"role": "assistant", "content": "..."}]
    out = web_handlers.respond(backend, CASPIAN, earlier)
    answer = backend.engine().ask(CASPIAN, history=["Tell me about bees."])
    assert out["answer"] == answer_json(answer) and out["answer"]["citations"][0]["doc"] == "rivers.md"
    assert out["chat"][:2] == earlier and out["chat"][2] == {"role": "user", "content": CASPIAN}
    assert out["chat"][3]["role"] == "assistant" and "\\[1\\]" in out["chat"][3]["content"]
    assert out["question"] == "" and out["error"]["visible"] is False
    assert out["citation_pick"]["choices"] == [("[1] rivers.md · 10–84", "1")] and out["citation_pick"]["value"] == "1"
    assert '<span class="marker">[1]</span> rivers.md' in out["sources"]
    # The whole original document, the cited span (hyphenated line break and all) highlighted;
    # "It flows ..." is quoted with the sentence that says what "it" is.
    quoted = "The Volga is the longest river in Europe. It flows into the Cas-\npian Sea."
    assert f'<mark class="current">{quoted}</mark>' in out["document"]
    assert "# Rivers" in out["document"]  # the whole document, not only the span


@pytest.mark.parametrize("question", ["   ", "\x00\x07\n"])
def test_an_empty_question_is_shown_and_the_chat_is_left_alone(backend, question):
    out = web_handlers.respond(backend, question, [{"role": "user", "content": "earlier"}])
    assert set(out) == {"error", "answer"} and out["answer"] is None
    assert shown(out["error"]).startswith("⚠ The question is empty")


def test_no_index_yet_says_how_to_add_documents(tmp_path, fake_embedder):
    backend = Backend(tmp_path / "none", fake_embedder, reports=tmp_path / "reports")
    message = shown(web_handlers.respond(backend, CASPIAN, None)["error"])
    assert "No index yet" in message and "Documents tab" in message and str(tmp_path) not in message
    failed = web_handlers.show_results(backend, CASPIAN, 5)
    assert set(failed) == {"hits", "error"} and failed["hits"] == [] and shown(failed["error"]) == message
    failed = web_handlers.run_eval(backend, None, False)
    assert "No index yet" in shown(failed["table"]) and failed["plot"] == {"__type__": "update", "visible": False}
    assert web_handlers.show_documents(backend)["table"] == []


def test_a_citation_opens_in_its_document_until_it_is_gone(backend):
    answer = web_handlers.respond(backend, CASPIAN, [])["answer"]
    opened = web_handlers.open_citation(backend, "1", answer)["document"]
    assert opened == web_handlers.respond(backend, CASPIAN, [])["document"]
    assert web_handlers.open_citation(backend, None, answer)["document"] == web_handlers.NO_CITATION_OPEN
    assert "That citation is gone" in web_handlers.open_citation(backend, "7", answer)["document"]
    web_handlers.remove_documents(backend, ["rivers.md"])
    assert "rivers.md is no longer indexed" in web_handlers.open_citation(backend, "1", answer)["document"]


def test_a_new_conversation_empties_the_chat_and_the_sources():
    out = web_handlers.clear_conversation()
    assert out["chat"] == [] and out["answer"] is None and out["error"]["visible"] is False
    assert out["citation_pick"] == {"__type__": "update", "choices": [], "value": None, "visible": False}
    assert "Ask a question" in out["sources"]


def test_search_ranks_passages_and_opens_one_with_its_sentence_highlighted(backend):
    out = web_handlers.show_results(backend, "honey nectar", 2)
    assert out["hits"] == hits_json(backend.engine().search("honey nectar", 2))
    assert [choice for _, choice in out["pick"]["choices"]] == ["1", "2"] and out["pick"]["visible"] is True
    assert "<mark>Bees make honey from nectar.</mark>" in out["results"]
    assert out["document"] == "" and out["error"]["visible"] is False
    opened = web_handlers.open_result(backend, "1", out["hits"])["document"]
    assert '<mark class="current">Bees make honey from nectar.</mark>' in opened
    assert '<mark class="cited"> A colony has one queen.' in opened  # the rest of the passage
    assert web_handlers.open_result(backend, None, out["hits"]) == {"document": ""}


def test_uploads_are_indexed_listed_and_removed(backend, tmp_path):
    notes = tmp_path / "owls.txt"
    notes.write_text("Owls hunt at night and swallow mice whole.", encoding="utf-8")
    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"\x00\x01\x02 binary")
    out = web_handlers.add_files(backend, [str(notes), str(junk)])
    assert out["status"].startswith(markdown_text("✓ Indexed uploads/owls.txt\n\n⚠ Skipped junk.txt: looks binary"))
    assert [row[0] for row in out["table"]] == ["bees.txt", "rivers.md", "uploads/owls.txt"]
    assert out["table"][2][5] == "upload" and out["files"] is None
    assert out["names"]["choices"] == ["bees.txt", "rivers.md", "uploads/owls.txt"] and out["names"]["value"] == []
    assert (
        web_handlers.respond(backend, "What do owls swallow?", [])["answer"]["citations"][0]["doc"]
        == "uploads/owls.txt"
    )

    removed = web_handlers.remove_documents(backend, ["uploads/owls.txt"])
    assert removed["status"] == markdown_text("✓ Removed uploads/owls.txt")
    assert removed["names"]["choices"] == ["bees.txt", "rivers.md"] == [row[0] for row in removed["table"]]
    assert web_handlers.show_documents(backend)["names"] == {"__type__": "update", "choices": ["bees.txt", "rivers.md"]}


def test_nothing_chosen_or_nothing_usable_is_said_and_nothing_changes(backend, tmp_path):
    assert web_handlers.add_files(backend, None) == {
        "files": None,
        "status": web_handlers._error("Choose one or more files first."),
    }
    assert web_handlers.remove_documents(backend, []) == {
        "status": web_handlers._error("Pick the documents to remove first.")
    }
    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"\x00\x01\x02 binary")
    out = web_handlers.add_files(backend, [str(junk)])
    assert out["status"].startswith(markdown_text("⚠ Skipped junk.txt: looks binary"))
    assert [row[0] for row in out["table"]] == ["bees.txt", "rivers.md"]


def test_eval_tab_writes_its_report_where_it_was_told(backend, tmp_path):
    questions = tmp_path / "mine.jsonl"
    lines = [
        {"id": "a", "question": CASPIAN, "doc": "rivers.md", "evidence": "flows into the Cas-\npian Sea"},
        {"id": "b", "question": "What do bees make from nectar?", "doc": "bees.txt", "evidence": "make honey"},
        {"id": "c", "question": "Who won the 1998 World Cup?", "doc": None, "evidence": None},
    ]
    questions.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    out = web_handlers.run_eval(backend, str(questions), False)
    assert "hybrid" in out["table"] and "hit@1" in out["table"]
    assert f"Report: `{tmp_path / 'reports' / 'mine.md'}`" in out["table"]
    assert out["plot"] == {"__type__": "update", "value": str(tmp_path / "reports" / "mine.png"), "visible": True}
    assert (tmp_path / "reports" / "mine.png").is_file()


def test_events_send_each_named_value_to_its_component(backend):
    """The page's wiring: each event's function returns {component: value} for its own outputs."""
    app = web.build_app(backend)
    functions = {block_fn.name: block_fn for block_fn in app.fns.values()}
    respond = functions["respond"]
    out = respond.fn("   ", [])
    assert set(out) <= set(respond.outputs) and len(respond.outputs) == 7 and len(respond.inputs) == 2
    (error,) = [component for component, value in out.items() if isinstance(value, dict)]
    assert error.elem_id == "ask-error" and "The question is empty" in out[error]["value"]
    # Gradio hands a progress tracker to the handlers that report progress, after their inputs.
    from gradio.helpers import special_args

    assert special_args(functions["add_files"].fn, [None])[1] == 1
    assert special_args(functions["run_eval"].fn, [None, False])[1] == 2
    assert special_args(respond.fn, ["q", []])[1] is None


@pytest.mark.slow
def test_the_server_asks_the_same_model_with_one_thread(seed_index, real_embedder, tmp_path):
    question = ["Which countries let their participation in the CST expire?"]
    engine = Backend(seed_index, real_embedder, reports=tmp_path).engine()
    assert engine.embedder.fingerprint == real_embedder.fingerprint and engine.embedder._threads == 1
    assert real_embedder._threads == len(os.sched_getaffinity(0))  # indexing keeps every core
    assert np.array_equal(engine.embedder.encode(question), real_embedder.encode(question))  # one run per text


@pytest.mark.slow
def test_real_model_answer_opens_the_cited_sentence_in_its_document(seed_index, real_embedder, tmp_path):
    root = tmp_path / "index"
    shutil.copytree(seed_index, root)
    backend = Backend(root, real_embedder, reports=tmp_path / "reports")
    out = web_handlers.respond(backend, "Which countries let their participation in the CST expire?", [])
    assert markdown_text("Uzbekistan, Georgia and Azerbaijan") in out["chat"][-1]["content"]
    assert markdown_text("[1]") in out["chat"][-1]["content"]
    assert out["answer"]["citations"][0]["doc"] == "004_9fdd055095dae421.txt"
    assert "let their participation expire" in out["sources"]
    assert "Nine countries signed the original CST in 1993" in out["document"].split('class="current">')[1]
    abstained = web_handlers.respond(backend, "How do I bake sourdough bread?", out["chat"])
    assert abstained["answer"]["abstained"] is True and "abstain-note" in abstained["sources"]
    assert abstained["citation_pick"]["visible"] is False

    found = web_handlers.show_results(backend, "Nine countries signed the original treaty", 5)
    assert found["hits"][0]["doc"] == "004_9fdd055095dae421.txt"
    assert "Nine countries signed" in web_handlers.open_result(backend, "1", found["hits"])["document"]


def test_gradio_chat_history_with_text_parts_makes_a_follow_up(backend):
    """Gradio 6's Chatbot sends each message's content as a list of text parts."""
    parts = [{"role": "user", "content": [{"type": "text", "text": "Tell me about the Volga."}]}]
    out = web_handlers.respond(backend, "Where does it flow?", parts)
    expected = backend.engine().ask("Where does it flow?", history=["Tell me about the Volga."])
    assert out["answer"] == answer_json(expected)


@pytest.mark.parametrize("k,shown_k", [(-3, "-3"), (0, "0"), (100000, "100000"), (2.5, "2.5")])
def test_a_bad_k_is_refused_in_the_page(backend, k, shown_k):
    failed = web_handlers.show_results(backend, CASPIAN, k)
    assert shown(failed["error"]) == f"⚠ k must be a whole number from 1 to 100, not {shown_k}."
    assert failed["hits"] == []


def test_an_over_long_question_or_history_is_refused_in_the_page(backend):
    assert "at most 2,000" in shown(web_handlers.respond(backend, "x" * 200_000, [])["error"])
    assert "at most 100" in shown(web_handlers.respond(backend, CASPIAN, ["q"] * 101)["error"])
    assert "at most 20,000" in shown(web_handlers.show_results(backend, "x" * 30_000, 5)["error"])
    assert "hits" in web_handlers.show_results(backend, "river " * 1000, 5)  # a pasted passage is a search


def test_a_bad_upload_is_refused_before_it_is_read(backend, tmp_path):
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ")
    message = shown(web_handlers.add_files(backend, [str(exe)])["status"])
    assert "tool.exe is not a type cite reads" in message and str(tmp_path) not in message
    assert "Choose one or more files" in shown(web_handlers.add_files(backend, [])["status"])


class GatedEmbedder:
    """The fake embedder, held at a gate while it embeds a new lake (so a write can be caught
    mid-way). The gate and the sign that it is reached are files: uploads are embedded in a
    worker process (indexer.isolated), where this embedder arrives pickled."""

    def __init__(self, inner, folder) -> None:
        self.inner, self.name, self.fingerprint, self.dim = inner, inner.name, inner.fingerprint, inner.dim
        self.gate, self.sign = folder / "gate-open", folder / "at-the-gate"

    def encode(self, texts):
        if any("Baikal" in t or "Ladoga" in t for t in texts):
            self.sign.touch()
            deadline = time.monotonic() + 30
            while not self.gate.exists():
                assert time.monotonic() < deadline
                time.sleep(0.01)
        return self.inner.encode(texts)

    def entered(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.sign.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.sign.exists()


def test_writers_queue_in_turn_while_questions_are_answered_from_the_current_version(backend, tmp_path):
    gated = GatedEmbedder(backend.embedder, tmp_path)
    backend._embedder = gated
    engine, before = backend.engine(), backend.engine().snapshot().version
    first, second = tmp_path / "baikal.txt", tmp_path / "ladoga.txt"
    first.write_text("Lake Baikal is the deepest lake.", encoding="utf-8")
    second.write_text("Lake Ladoga is the largest lake in Europe.", encoding="utf-8")
    statuses: list[str] = []
    results: dict[str, object] = {}

    def add(path, name):
        results[name] = backend.add_files([str(path)], waiting=statuses.append)

    writing = threading.Thread(target=add, args=(first, "first"))
    writing.start()
    assert gated.entered(30)  # the first change is embedding, holding the writer
    queued = threading.Thread(target=add, args=(second, "second"))
    queued.start()
    deadline = time.time() + 10
    while not statuses and time.time() < deadline:
        time.sleep(0.01)
    assert statuses == ["Queued: 1 change ahead of yours"] and backend.writers.waiting() == 1
    answer = engine.ask(CASPIAN)  # answered meanwhile, from the version before the change
    assert answer.version == before and answer.citations[0].doc == "rivers.md"
    gated.gate.touch()
    writing.join(30)
    queued.join(30)
    assert results == {"first": (["uploads/baikal.txt"], []), "second": (["uploads/ladoga.txt"], [])}
    assert {"uploads/baikal.txt", "uploads/ladoga.txt"} <= set(backend.document_names())
    assert engine.snapshot().version != before


def heard(condition, timeout: float = 30) -> bool:
    """Whether `condition()` came true within `timeout` seconds (what a thread says, not a guess at when)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_change_waits_for_another_programs_writer(backend, tmp_path):
    from cite.core.store import writer_lock

    upload = tmp_path / "note.txt"
    upload.write_text("Lake Onega is in Karelia.", encoding="utf-8")
    statuses: list[str] = []
    with writer_lock(backend.root):  # as `cite index` would hold it
        adding = threading.Thread(target=lambda: backend.add_files([str(upload)], waiting=statuses.append))
        adding.start()
        assert heard(lambda: statuses), "the waiting change said nothing"
        assert adding.is_alive() and "another program writing the index" in statuses[-1]
    adding.join(30)
    assert "uploads/note.txt" in backend.document_names()


def test_the_documents_tab_shows_a_waiting_change_in_its_progress_bar(backend, tmp_path):
    from cite.core.store import writer_lock

    upload = tmp_path / "note.txt"
    upload.write_text("Lake Onega is in Karelia.", encoding="utf-8")
    shown_progress: list[str] = []
    out: dict = {}
    with writer_lock(backend.root):
        adding = threading.Thread(
            target=lambda: out.update(
                web_handlers.add_files(backend, [str(upload)], lambda *a, desc="": shown_progress.append(desc))
            )
        )
        adding.start()
        assert heard(lambda: shown_progress), "the waiting change showed nothing"
    adding.join(30)
    assert "another program writing the index" in shown_progress[0] and shown_progress[-1].startswith("Embedding")
    assert out["status"] == markdown_text("✓ Indexed uploads/note.txt")


def test_a_pdf_citation_shows_its_page_as_an_image_beside_the_text(tmp_path, fake_embedder):
    pytest.importorskip("reportlab")
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    folder = tmp_path / "manuals"
    folder.mkdir()
    pdf = canvas.Canvas(str(folder / "guide.pdf"), pagesize=A4)
    pages = [
        ["Pumps move water from the lower tank.", "Each pump has a fuse rated for ten amperes."],
        ["Before the valve opens, the lever must be pulled.", "The lever is painted red for this reason."],
        ["Cleaning the filter takes about an hour.", "Use warm water and no soap on the mesh."],
    ]
    for lines in pages:  # different lines on every page: repeated ones would be running headers
        for i, line in enumerate(lines):
            pdf.drawString(72, 760 - 20 * i - 37 * pages.index(lines), line)
        pdf.showPage()
    pdf.save()
    root = tmp_path / "index"
    build_index(load_paths([folder]).documents, root, fake_embedder, SplitSettings())
    backend = Backend(root, fake_embedder, reports=tmp_path / "reports")
    document = backend.engine().index.documents["guide.pdf"]
    assert len(document.pages) == 3
    start = document.text.index("Before the valve opens")
    quote = {"n": 1, "doc": "guide.pdf", "start": start, "end": start + 40, "page": 2, "quote": "..."}
    shown = web_handlers.citation_document(backend, {"citations": [quote]}, "1")
    assert '<div class="page-view"><div class="doc-title">guide.pdf · page 2</div>' in shown
    assert 'src="data:image/png;base64,' in shown and '<mark class="current">' in shown
    png = backend.page_image("guide.pdf", 2, (start, start + 40))
    assert png is not None and png.startswith(b"\x89PNG")
    (folder / "guide.pdf").unlink()  # the file moved away: the text view alone, no error
    assert "page-view" not in web_handlers.citation_document(backend, {"citations": [quote]}, "1")


def test_the_documents_list_shows_each_title(backend):
    listed = {row["document"]: row for row in backend.document_records()}
    assert listed["rivers.md"]["title"] == "Rivers"
