"""The engine's snapshot: one index version per request, whatever a writer does meanwhile."""

from __future__ import annotations

import gc
import threading
import weakref
from dataclasses import replace
from pathlib import Path

from cite.core.config import AnswerSettings, Settings, SplitSettings
from cite.core.store import current_version
from cite.core.types import Document
from cite.indexer.build import build_index
from cite.retriever.engine import Engine

from tests.helpers import FakeEmbedder

BODY = (
    "The Volga is the longest river in Europe. It flows into the Caspian Sea. "
    "Bees make honey from nectar. A colony has one queen. "
)


def corpus(variant: int) -> list[Document]:
    """Two versions of the same documents whose offsets differ: version 1 has a preamble, so a
    citation computed from one version's spans and the other's text would quote the wrong place."""
    preamble = "A preamble that moves every later sentence. " * variant * 3
    return [
        Document("rivers.txt", preamble + BODY * 4),
        Document("notes.txt", preamble + "Notes on rivers and bees. " + BODY),
    ]


def test_every_answer_cites_the_version_it_was_answered_from(tmp_path):
    embedder = FakeEmbedder()
    root = tmp_path / "index"
    always_answer = Settings(answer=replace(AnswerSettings(), min_confidence=0.0))
    build_index(corpus(0), root, embedder, SplitSettings())
    texts = {current_version(root).name: {d.doc: d.text for d in corpus(0)}}
    engine = Engine(root, embedder, always_answer)
    answers, errors = [], []
    done = threading.Event()

    def keep_asking() -> None:
        while not done.is_set():
            try:
                answers.append(engine.ask("Which is the longest river in Europe?"))
            except Exception as error:  # noqa: BLE001 (any failure is the finding)
                errors.append(error)

    askers = [threading.Thread(target=keep_asking) for _ in range(2)]
    for asker in askers:
        asker.start()
    try:
        for round_ in range(1, 13):
            documents = corpus(round_ % 2)
            build_index(documents, root, embedder, SplitSettings())
            texts[current_version(root).name] = {d.doc: d.text for d in documents}
    finally:
        done.set()
        for asker in askers:
            asker.join()

    assert errors == []
    versions = {answer.version for answer in answers}
    assert len(versions) > 1, "the askers never saw a new version; the test proves nothing"
    for answer in answers:
        original = texts[answer.version]
        assert answer.citations
        for citation in answer.citations:
            assert citation.quote == original[citation.doc][citation.start : citation.end]
            spans = [(h.passage.start, h.passage.end) for h in answer.hits if h.passage.doc == citation.doc]
            assert any(start <= citation.start < citation.end <= end for start, end in spans)
        for hit in answer.hits:
            source = original[hit.passage.doc][hit.passage.start : hit.passage.end]
            assert hit.passage.text.split() == source.split()


def test_index_reads_the_loaded_snapshot_without_touching_the_disk(tmp_path, monkeypatch):
    embedder = FakeEmbedder()
    root = tmp_path / "index"
    build_index(corpus(0), root, embedder, SplitSettings())
    engine = Engine(root, embedder)
    snapshot = engine.snapshot()

    def no_disk(_root):
        raise AssertionError("Engine.index read the disk")

    monkeypatch.setattr("cite.retriever.engine.current_version", no_disk)
    assert engine.index is snapshot.index


def test_a_pinned_snapshot_keeps_answering_from_its_version(tmp_path):
    embedder = FakeEmbedder()
    root = tmp_path / "index"
    build_index(corpus(0), root, embedder, SplitSettings())
    engine = Engine(root, embedder)
    pinned = engine.snapshot()
    build_index(corpus(1), root, embedder, SplitSettings())
    old = engine.search("longest river", 3, snapshot=pinned)
    new = engine.search("longest river", 3)
    assert engine.snapshot() is not pinned
    assert not any("preamble" in h.passage.text for h in old)
    assert any("preamble" in h.passage.text for h in new)
    texts = {d.doc: d.text for d in corpus(0)}
    assert all(h.passage.text == texts[h.passage.doc][h.passage.start : h.passage.end] for h in old)


def test_a_version_switched_out_is_freed_with_its_mapped_files(tmp_path):
    """Nothing keeps an old version alive once no request reads it: not the engine, not a
    cycle waiting for the garbage collector (which a busy server runs rarely), so the mapped
    files of retired versions, deleted on disk, are unmapped at once."""
    embedder = FakeEmbedder()
    root = tmp_path / "index"
    build_index(corpus(0), root, embedder, SplitSettings())
    engine = Engine(root, embedder)
    versions: list[weakref.ref] = []
    segments: list[weakref.ref] = []
    gc.collect()
    gc.disable()  # only reference counts free objects now: a cycle would stay
    try:
        for round_ in range(1, 7):
            snapshot = engine.snapshot()
            engine.ask("Which is the longest river in Europe?", snapshot=snapshot)  # fills every cached view
            index = snapshot.index
            assert index.row_of[index.passage_ids([0])[0]] == 0 and index.documents["notes.txt"].text
            versions.append(weakref.ref(index))
            segments += [weakref.ref(segment) for segment in index.segments]
            del snapshot, index
            build_index(corpus(round_ % 2), root, embedder, SplitSettings())
        live = engine.snapshot().index
        kept = [ref() for ref in versions if ref() is not None and ref() is not live]
        kept_segments = [ref() for ref in segments if ref() is not None and ref() not in live.segments]
        assert kept == [] and kept_segments == [], f"{len(kept)} old versions, {len(kept_segments)} segments alive"
        maps = Path("/proc/self/maps")
        if maps.exists():
            deleted = [line for line in maps.read_text().splitlines() if str(root) in line and "(deleted)" in line]
            assert deleted == []
    finally:
        gc.enable()
