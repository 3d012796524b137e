"""The index on disk: incremental builds, atomic replacement, and clear errors."""

import json

import pytest
from cite.core.config import SearchSettings, SplitSettings
from cite.core.errors import DocumentError, IndexBusy, IndexCorrupt, IndexIncompatible, IndexMissing
from cite.core.store import current_version, read_index, read_manifest, writer_lock
from cite.indexer.build import build_index
from cite.indexer.loaders import load_paths
from cite.retriever.search import DenseSearcher, HybridSearcher, LexicalSearcher, load_index

from tests.helpers import FakeEmbedder


def _build(folder, root, embedder):
    # Passages embedded whole, so embedding counts say which passages were embedded.
    return build_index(load_paths([folder]).documents, root, embedder, SplitSettings(passage_vectors="passage"))


def test_build_then_search_finds_the_right_passage(corpus, tmp_path, fake_embedder):
    root = tmp_path / "index"
    report = _build(corpus, root, fake_embedder)
    assert report.added == ["bees.txt", "rivers.md"] and report.embedded == report.passages
    index = load_index(root, fake_embedder)
    searcher = HybridSearcher(DenseSearcher(index, fake_embedder), LexicalSearcher(index), SearchSettings())
    hits = searcher.search("longest river in Europe", 3)
    assert hits[0].passage.doc == "rivers.md"
    assert set(hits[0].scores) == {"dense", "bm25", "sentence", "fused"}
    original = index.documents["rivers.md"].text
    assert "Volga" in original[hits[0].passage.start : hits[0].passage.end]


def test_incremental_reindex_embeds_only_what_changed(corpus, tmp_path, fake_embedder):
    root = tmp_path / "index"
    _build(corpus, root, fake_embedder)

    same = _build(corpus, root, fake_embedder)
    assert not same.wrote and same.embedded == 0

    (corpus / "bees.txt").write_text("Bees dance to tell where flowers are.", encoding="utf-8")
    (corpus / "new.txt").write_text("Owls hunt at night.", encoding="utf-8")
    (corpus / "rivers.md").unlink()
    embedder = FakeEmbedder()
    report = _build(corpus, root, embedder)
    assert (report.added, report.changed, report.removed) == (["new.txt"], ["bees.txt"], ["rivers.md"])
    # One passage and one sentence for each of the two new texts, nothing else.
    assert sum(embedder.calls) == 4 and report.embedded == 2

    index = read_index(root)
    assert sorted(index.documents) == ["bees.txt", "new.txt"]
    assert {p.doc for p in index.passages} == {"bees.txt", "new.txt"}
    assert index.dense.ntotal == len(index.passages)


def test_unchanged_document_keeps_its_vectors_and_indexed_time(corpus, tmp_path, fake_embedder):
    root = tmp_path / "index"
    _build(corpus, root, fake_embedder)
    before = read_index(root)
    (corpus / "new.txt").write_text("Owls hunt at night.", encoding="utf-8")
    _build(corpus, root, fake_embedder)
    after = read_index(root)
    old_rows = [i for i, p in enumerate(before.passages) if p.doc == "bees.txt"]
    new_rows = [i for i, p in enumerate(after.passages) if p.doc == "bees.txt"]
    assert (before.vectors(old_rows) == after.vectors(new_rows)).all()
    assert before.manifest.documents["bees.txt"].indexed_at == after.manifest.documents["bees.txt"].indexed_at


def test_crash_while_writing_leaves_the_old_index_usable(corpus, tmp_path, fake_embedder, monkeypatch):
    root = tmp_path / "index"
    _build(corpus, root, fake_embedder)
    live = current_version(root)
    (corpus / "new.txt").write_text("Owls hunt at night.", encoding="utf-8")

    import faiss

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index", crash)
    with pytest.raises(OSError, match="disk full"):
        _build(corpus, root, fake_embedder)
    assert current_version(root) == live
    assert sorted(read_index(root).documents) == ["bees.txt", "rivers.md"]
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-")]
    monkeypatch.undo()
    assert _build(corpus, root, fake_embedder).added == ["new.txt"]


def test_missing_index_says_how_to_build_one(tmp_path, fake_embedder):
    with pytest.raises(IndexMissing, match="cite index"):
        load_index(tmp_path / "none", fake_embedder)


def test_index_from_another_model_must_be_rebuilt(corpus, tmp_path, fake_embedder):
    root = tmp_path / "index"
    _build(corpus, root, fake_embedder)
    other = FakeEmbedder()
    other.fingerprint = "another-model"
    with pytest.raises(IndexIncompatible, match="run `cite index` to rebuild"):
        load_index(root, other)
    report = _build(corpus, root, other)
    assert "model changed" in report.rebuilt_because and report.embedded == report.passages


def test_other_format_version_must_be_rebuilt(corpus, tmp_path, fake_embedder):
    root = tmp_path / "index"
    _build(corpus, root, fake_embedder)
    manifest = current_version(root) / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "format_version": 999}))
    with pytest.raises(IndexIncompatible, match="format version 999"):
        read_index(root)


def test_tampered_file_is_detected_by_checksum(corpus, tmp_path, fake_embedder):
    root = tmp_path / "index"
    _build(corpus, root, fake_embedder)
    texts = root / "segments" / read_manifest(root).segments[0].name / "texts.bin"
    texts.write_bytes(texts.read_bytes().replace(b"Volga", b"Rhine"))  # same size: the mtime gives it away
    with pytest.raises(IndexCorrupt, match="checksum"):
        read_index(root)


def test_second_writer_is_refused(tmp_path):
    root = tmp_path / "index"
    with writer_lock(root):
        with pytest.raises(IndexBusy, match="Another `cite index`"):
            with writer_lock(root):
                pass


def test_nothing_to_index_is_an_error(tmp_path, fake_embedder):
    with pytest.raises(DocumentError, match="No documents"):
        build_index([], tmp_path / "index", fake_embedder, SplitSettings())


def test_reindexing_one_source_keeps_documents_from_others(corpus, tmp_path, fake_embedder):
    from dataclasses import replace

    from cite.core.types import Document
    from cite.indexer.loaders import source_of

    root = tmp_path / "index"
    build_index(load_paths([corpus]).documents, root, fake_embedder, SplitSettings(), scope={source_of(corpus)})
    upload = Document("uploads/owls.txt", "Owls hunt at night.", source="upload")
    report = build_index([upload], root, fake_embedder, SplitSettings(), scope=set())
    assert report.added == ["uploads/owls.txt"] and report.unchanged == ["bees.txt", "rivers.md"]

    (corpus / "rivers.md").unlink()
    loaded = [replace(d) for d in load_paths([corpus]).documents]
    report = build_index(loaded, root, fake_embedder, SplitSettings(), scope={source_of(corpus)})
    assert report.removed == ["rivers.md"]
    assert sorted(read_index(root).documents) == ["bees.txt", "uploads/owls.txt"]

    report = build_index([], root, fake_embedder, SplitSettings(), scope=set(), remove={"uploads/owls.txt"})
    assert report.removed == ["uploads/owls.txt"]
    assert sorted(read_index(root).documents) == ["bees.txt"]


def test_large_collections_get_an_hnsw_index_that_finds_the_same_passages(corpus, tmp_path, fake_embedder, monkeypatch):
    from cite.core.store import dense

    monkeypatch.setattr(dense, "HNSW_FROM", 1)
    root = tmp_path / "index"
    _build(corpus, root, fake_embedder)
    index = load_index(root, fake_embedder)
    assert index.manifest.segments[0].dense_index == "hnsw32-sq8" and hasattr(index.dense.indexes[0], "hnsw")
    hits = DenseSearcher(index, fake_embedder).search("longest river in Europe", 1)
    assert hits[0].passage.doc == "rivers.md"


def test_long_queries_are_matched_at_passage_level_only(corpus, tmp_path, fake_embedder):
    root = tmp_path / "index"
    _build(corpus, root, fake_embedder)
    index = load_index(root, fake_embedder)
    parts = DenseSearcher(index, fake_embedder), LexicalSearcher(index)
    with_sentences = HybridSearcher(*parts, SearchSettings(sentence_weight=0.4, sentence_query_words=5))
    without = HybridSearcher(*parts, SearchSettings(sentence_weight=0.0, sentence_query_words=5))
    short, long = "bees and honey", "bees make honey and the Volga is the longest river in Europe today"
    assert [h.score for h in with_sentences.search(long, 5)] == [h.score for h in without.search(long, 5)]
    assert [h.score for h in with_sentences.search(short, 5)] != [h.score for h in without.search(short, 5)]


def _segment_files(root):
    """Every segment file with its modification time and inode: what a write touched."""
    return {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in (root / "segments").rglob("*") if p.is_file()}


def test_adding_a_document_writes_only_a_new_segment(corpus, tmp_path, fake_embedder):
    root = tmp_path / "index"
    _build(corpus, root, fake_embedder)
    before = _segment_files(root)
    (corpus / "owls.txt").write_text("Owls hunt at night. They fly without a sound.", encoding="utf-8")
    embedder = FakeEmbedder()
    report = _build(corpus, root, embedder)
    assert report.added == ["owls.txt"] and report.embedded == 1 and report.carried == 0
    after = _segment_files(root)
    assert all(after[path] == stamp for path, stamp in before.items())  # not one byte rewritten
    index = read_index(root)
    assert len(index.segments) == 2 and sorted(index.documents) == ["bees.txt", "owls.txt", "rivers.md"]
    hits = HybridSearcher(DenseSearcher(index, embedder), LexicalSearcher(index), SearchSettings()).search(
        "owls hunt at night", 2
    )
    assert hits[0].passage.doc == "owls.txt"


def test_changing_a_document_carries_its_segment_neighbours_without_embedding(corpus, tmp_path, fake_embedder):
    root = tmp_path / "index"
    _build(corpus, root, fake_embedder)
    rivers = [p for p in read_index(root).passages if p.doc == "rivers.md"]
    (corpus / "bees.txt").write_text("Bees dance to tell where flowers are.", encoding="utf-8")
    embedder = FakeEmbedder()
    report = _build(corpus, root, embedder)
    assert report.changed == ["bees.txt"] and report.carried == len(rivers)
    assert sum(embedder.calls) == 2  # the new passage and its one sentence
    index = read_index(root)
    assert len(index.segments) == 1 and [p for p in index.passages if p.doc == "rivers.md"] == rivers


def test_segments_merge_and_search_as_one_index(corpus, tmp_path, fake_embedder, monkeypatch):
    """Many small writes: the segment count stays bounded, and every score equals the one a
    single build of the same documents gives."""
    from cite.indexer import plan

    monkeypatch.setattr(plan, "MAX_SEGMENTS", 3)
    root = tmp_path / "index"
    _build(corpus, root, fake_embedder)
    for i in range(6):
        (corpus / f"note{i}.txt").write_text(f"Note {i} is about the river Volga and bees {i}.", encoding="utf-8")
        _build(corpus, root, fake_embedder)
        assert len(read_manifest(root).segments) <= 3
    once = tmp_path / "once"
    _build(corpus, once, fake_embedder)

    def ranking(path):
        index = read_index(path)
        searcher = HybridSearcher(DenseSearcher(index, fake_embedder), LexicalSearcher(index), SearchSettings())
        return {h.passage.id: (h.scores["dense"], h.scores["bm25"]) for h in searcher.search("Volga bees", 20)}

    # BM25 is exact whatever the segments; cosines differ only by int8 rounding (each segment
    # quantises with ranges of its own).
    segmented, single = ranking(root), ranking(once)
    assert segmented.keys() == single.keys()
    for pid, (dense, bm25) in segmented.items():
        assert bm25 == pytest.approx(single[pid][1], rel=1e-5) and dense == pytest.approx(single[pid][0], abs=0.01)
    assert len(list((root / "segments").iterdir())) == len(read_manifest(root).segments)  # retired ones deleted


def test_segmented_search_matches_one_array():
    import faiss
    import numpy as np
    from cite.core.store import SegmentedDense

    rng = np.random.default_rng(3)
    parts = [rng.standard_normal((n, 8)).astype(np.float32) for n in (5, 0, 7, 3)]
    whole = np.vstack(parts)
    indexes = []
    for part in parts:
        index = faiss.IndexFlatIP(8)
        index.add(part)
        indexes.append(index)
    flat = faiss.IndexFlatIP(8)
    flat.add(whole)
    query = rng.standard_normal((1, 8)).astype(np.float32)
    scores, found = SegmentedDense(indexes).search(query, 6)
    expected_scores, expected = flat.search(query, 6)
    assert (found == expected).all() and np.allclose(scores, expected_scores)


def test_sentence_mean_vectors_embed_no_passage_text(corpus, tmp_path):
    import numpy as np
    from cite.core.types import Document

    class Recording(FakeEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.texts: list[str] = []

        def encode(self, texts):
            self.texts += list(texts)
            return super().encode(texts)

    embedder = Recording()
    document = Document("owls.txt", "Owls hunt at night. They fly without a sound.", title="Owls")
    build_index([document], tmp_path / "index", embedder, SplitSettings(passage_vectors="sentence-mean"))
    assert sorted(embedder.texts) == ["Owls", "Owls hunt at night.", "They fly without a sound."]
    index = read_index(tmp_path / "index")
    mean = embedder.encode(["Owls hunt at night.", "They fly without a sound.", "Owls"]).mean(axis=0)
    assert np.allclose(index.vectors([0])[0], mean / np.linalg.norm(mean), atol=4e-3)  # int8-stored


def test_bm25_finds_an_acronym_by_the_long_form_its_document_defines(tmp_path, fake_embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    filler = " ".join(f"Sentence {n} is about something else entirely." for n in range(30))
    (folder / "cis.txt").write_text(
        f"The Commonwealth of Independent States (CIS) was founded in 1991. {filler} "
        "Over the years the CIS became a talking shop.",
        encoding="utf-8",
    )
    for spell_out, found in ((True, True), (False, False)):
        root = tmp_path / f"index-{spell_out}"
        build_index(load_paths([folder]).documents, root, fake_embedder, SplitSettings(spell_out_acronyms=spell_out))
        hits = LexicalSearcher(read_index(root)).search("what did the commonwealth become", 5)
        assert any("talking shop" in hit.passage.text for hit in hits) is found
        # Only the BM25 tokens change: the passage text a reader sees is the original.
        assert all("(Commonwealth" not in p.text for p in read_index(root).passages)


def test_fusing_cached_candidates_equals_searching_with_those_settings(corpus, tmp_path, fake_embedder):
    root = tmp_path / "index"
    _build(corpus, root, fake_embedder)
    index = load_index(root, fake_embedder)
    dense, lexical = DenseSearcher(index, fake_embedder), LexicalSearcher(index)
    searcher = HybridSearcher(dense, lexical, SearchSettings())
    query = "where do bees gather pollen"
    vector = fake_embedder.encode([query])
    found = searcher.candidates(query, vector, 5)
    for other in (SearchSettings(fusion="rrf"), SearchSettings(dense_weight=0.0, bm25_weight=1.0, sentence_weight=0.0)):
        direct = HybridSearcher(dense, lexical, other).search_with_vector(query, vector, 5)
        assert searcher.fuse(found, 5, other) == direct
