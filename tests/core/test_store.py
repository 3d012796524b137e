"""The segment store: documents come back as they went in; one compatibility check."""

import threading
import time
from dataclasses import replace

import pytest
from cite.core.config import SplitSettings
from cite.core.errors import IndexCorrupt, IndexMissing
from cite.core.lexical import TOKENIZER_NAME
from cite.core.store import (
    current_version,
    document_from_json,
    incompatibility,
    read_index,
    read_manifest,
    write_version,
    writer_lock,
)
from cite.core.types import Document, Heading
from cite.indexer.build import build_index

from tests.helpers import FakeEmbedder

TEXT = "Rivers\nThe Volga is the longest river in Europe.\nLakes\nBaikal is the deepest lake."


def test_pages_and_headings_survive_the_segment_store(tmp_path, fake_embedder):
    paged = Document(
        "atlas.pdf",
        TEXT,
        title="Atlas",
        source="books",
        pages=(0, 55),
        headings=(Heading(0, 6, 1), Heading(55, 60, 2)),
    )
    plain = Document("note.txt", "Owls hunt at night.", source="books")
    root = tmp_path / "index"
    build_index([paged, plain], root, fake_embedder, SplitSettings())
    documents = read_index(root).documents
    assert documents == {"atlas.pdf": paged, "note.txt": plain}
    assert isinstance(documents["atlas.pdf"].pages, tuple)
    assert all(isinstance(h, Heading) for h in documents["atlas.pdf"].headings)

    # Carried into a new segment when a neighbour changes, still the same.
    changed = replace(plain, text="Owls hunt at night, and sleep by day.")
    build_index([paged, changed], root, fake_embedder, SplitSettings())
    assert read_index(root).documents["atlas.pdf"] == paged


def test_a_document_written_before_pages_and_headings_existed_still_reads():
    old = {"doc": "a.txt", "text": "Some text.", "title": "", "source": "docs"}
    assert document_from_json(old) == Document("a.txt", "Some text.", source="docs")


def test_incompatibility_names_what_differs(tmp_path, fake_embedder):
    root = tmp_path / "index"
    build_index([Document("a.txt", "Owls hunt at night.")], root, fake_embedder, SplitSettings())
    manifest = read_index(root).manifest
    assert incompatibility(manifest, fake_embedder) is None
    assert incompatibility(manifest, fake_embedder, SplitSettings()) is None
    other = FakeEmbedder()
    other.fingerprint = "another-model"
    assert incompatibility(manifest, other) == "model"
    renamed = FakeEmbedder()
    renamed.name = "another-name"
    assert incompatibility(manifest, renamed) == "model"
    assert incompatibility(replace(manifest, tokenizer=TOKENIZER_NAME + "-v2"), fake_embedder) == "tokenizer"
    assert incompatibility(manifest, fake_embedder, SplitSettings(max_chars=500)) == "split"


@pytest.mark.parametrize("kind", ["flat-sq8", "hnsw32-sq8", "ivfpq48-sq8"])
def test_dense_index_kinds_are_built_searchable_and_give_back_their_vectors(kind):
    import numpy as np
    from cite.core.store import build_dense_index, ready_to_search

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((300, 96)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, built = build_dense_index(vectors, kind)
    ready_to_search(index)
    assert built == kind and index.ntotal == 300
    assert index.search(vectors[7:8], 1)[1][0][0] == 7
    stored = index.reconstruct_batch(np.arange(300))
    assert np.abs(stored - vectors).max() < 0.01  # int8 codes


def test_one_vector_is_stored_faithfully():
    import numpy as np
    from cite.core.store import build_dense_index

    vector = np.random.default_rng(1).standard_normal((1, 32)).astype(np.float32)
    vector /= np.linalg.norm(vector)
    index, _ = build_dense_index(vector)
    assert np.abs(index.reconstruct(0) - vector[0]).max() < 0.005


def test_an_unknown_dense_index_kind_is_refused():
    from cite.core.store import new_dense_index

    with pytest.raises(ValueError, match="Unknown dense index kind"):
        new_dense_index("ivf-ip", 4)


def test_int8_quantisation_is_close_and_idempotent():
    import numpy as np
    from cite.core.store import dequantise, quantise

    vectors = np.random.default_rng(2).standard_normal((50, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    codes, scales = quantise(vectors)
    back = dequantise(codes, scales)
    assert codes.dtype == np.int8 and np.abs(back - vectors).max() <= scales.max() / 2 + 1e-7
    assert np.abs((back * vectors).sum(axis=1) - 1).max() < 1e-3  # cosines barely move
    again, _ = quantise(back)
    assert (again == codes).all()  # rows moved into another segment keep their codes
    zero_codes, _ = quantise(np.zeros((1, 4), dtype=np.float32))
    assert (zero_codes == 0).all()


def test_passages_are_spans_of_the_stored_text(tmp_path, fake_embedder):
    from cite.indexer.splitter import split_document

    text = "The Volga is the longest river\nin Europe. It flows into the Caspian  Sea.\n\n" + " ".join(
        f"Sentence {n} is long enough to fill passages with words." for n in range(60)
    )
    document = Document("rivers.txt", text, title="Rivers")
    root = tmp_path / "index"
    build_index([document], root, fake_embedder, SplitSettings(max_chars=300))
    index = read_index(root)
    expected = split_document(document, SplitSettings(max_chars=300))
    assert list(index.passages) == expected and len(expected) > 3
    for row, passage in enumerate(index.passages):
        assert index.row_of[passage.id] == row
        spans, _ = index.sentences_of(row)
        assert all(text[a:b] in text[passage.start : passage.end] for a, b in spans)
    segment = index.segments[0]
    # Overlapping passages share sentences: each is stored once.
    assert len(segment.sentence_spans) < len(segment.sentence_rows)
    assert not (root / "segments" / segment.record.name / "passages.jsonl").exists()


def test_load_checks_stamps_and_hashes_only_what_moved(tmp_path, fake_embedder, monkeypatch):
    import os

    from cite.core.errors import IndexCorrupt
    from cite.core.store import versions

    root = tmp_path / "index"
    build_index([Document("a.txt", "Owls hunt at night.")], root, fake_embedder, SplitSettings())
    hashed = []
    real = versions.sha256_of_files
    monkeypatch.setattr(versions, "sha256_of_files", lambda paths: hashed.append(paths) or real(paths))
    read_index(root)
    assert hashed == []  # sizes and mtimes matched: nothing read in full
    folder = root / "segments" / read_index(root).manifest.segments[0].name
    texts = folder / "texts.bin"
    os.utime(texts, ns=(1, 1))  # copied elsewhere: same bytes, another mtime
    read_index(root)
    assert [p[0].name for p in hashed] == ["texts.bin"]
    data = texts.read_bytes()
    texts.write_bytes(data.replace(b"Owls", b"Cats"))
    stamp = read_index(root, check="none").manifest.segments[0].stamps["texts.bin"]
    os.utime(texts, ns=(stamp[1], stamp[1]))  # same size and mtime: only a full check sees it
    read_index(root)
    with pytest.raises(IndexCorrupt, match="damaged"):
        read_index(root, check="full")
    from cite.core.store import verify_index

    with pytest.raises(IndexCorrupt, match="texts.bin"):
        verify_index(root)
    texts.write_bytes(data)
    os.utime(texts, ns=(stamp[1], stamp[1]))
    files, size = verify_index(root)
    assert files == len(read_index(root).manifest.segments[0].files) and size > 0


def test_after_a_crashed_writer_every_file_is_hashed(tmp_path, fake_embedder):
    from cite.core.store import writer_crashed

    root = tmp_path / "index"
    build_index([Document("a.txt", "Owls hunt at night.")], root, fake_embedder, SplitSettings())
    assert not writer_crashed(root)
    (root / ".writing").write_text("999999999")  # a writer that is no longer running
    assert writer_crashed(root)
    build_index([Document("b.txt", "Bees make honey.")], root, fake_embedder, SplitSettings())
    assert not writer_crashed(root)  # the next complete version clears it


def test_an_index_of_format_2_is_rebuilt_saying_why(tmp_path, fake_embedder):
    import json

    from cite.core.store import current_version

    root = tmp_path / "index"
    build_index([Document("a.txt", "Owls hunt at night.")], root, fake_embedder, SplitSettings())
    manifest = current_version(root) / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format_version": 2}))
    report = build_index([Document("a.txt", "Owls hunt at night.")], root, fake_embedder, SplitSettings())
    assert "format version 2" in report.rebuilt_because and "stored once" in report.rebuilt_because
    assert report.added == ["a.txt"] and read_index(root).manifest.format_version == 3


def test_cite_verify_hashes_every_file_and_names_a_damaged_one(tmp_path, fake_embedder, capsys):
    from cite.ui.cli import main

    root = tmp_path / "index"
    build_index([Document("a.txt", "Owls hunt at night.")], root, fake_embedder, SplitSettings())
    assert main(["verify", "--index", str(root)]) == 0
    assert "intact" in capsys.readouterr().out
    codes = root / "segments" / read_index(root).manifest.segments[0].name / "sentence_codes.npy"
    data = bytearray(codes.read_bytes())
    data[-1] ^= 1
    codes.write_bytes(bytes(data))
    assert main(["verify", "--index", str(root)]) == 1
    err = capsys.readouterr().err
    assert "sentence_codes.npy" in err and "damaged" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "text",
    [
        "Plain text with single spaces.",
        "  secu-\nrity and U.S.-\nRussian talks\n\nNew paragraph,\n\nbroken  here\tand\r\nthere. ",
        "Line one\nline two\u00a0with a no-break space",
        "",
    ],
)
def test_the_text_only_normaliser_matches_normalise(text):
    from cite.core.text import normalise, normalised_text

    assert normalised_text(text) == normalise(text).text


def test_reads_while_versions_switch_never_find_the_index_missing(tmp_path, fake_embedder):
    """A writer switching versions in a tight loop (each switch deletes the version before it)
    while a reader opens the index: the reader follows the switch, never reports "no index"
    (the soak's 409 on an upload while `cite index` ran)."""
    root = tmp_path / "index"
    build_index(
        [Document("a.txt", "The Volga flows into the Caspian Sea. Bees make honey.")],
        root,
        fake_embedder,
        SplitSettings(),
    )
    manifest = read_manifest(root)
    done, errors, reads, switches = threading.Event(), [], [0], [0]

    def switch() -> None:
        with writer_lock(root):
            while not done.is_set():
                write_version(root, manifest)
                switches[0] += 1

    def read() -> None:
        while not done.is_set() and not errors:
            try:
                if current_version(root) is None:
                    raise IndexMissing("current_version found no index")
                assert read_manifest(root).documents.keys() == {"a.txt"}
                if reads[0] % 20 == 0:
                    assert len(read_index(root).documents) == 1
                reads[0] += 1
            except (IndexMissing, IndexCorrupt) as error:
                errors.append(error)

    threads = [threading.Thread(target=switch), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not errors:
        time.sleep(0.05)
    done.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert switches[0] > 50 and reads[0] > 50, "too few switches or reads to prove anything"


def test_mentioned_finds_a_word_anywhere_in_the_named_documents_and_nowhere_else(tmp_path, fake_embedder):
    long_page = Document("pg/delete.html", "DELETE removes rows. " + "It asks nothing. " * 80 + "PostgreSQL 15.")
    other = Document("pg/insert.html", "INSERT adds rows to a table; Excel is not involved.")
    root = tmp_path / "index"
    build_index([long_page], root, fake_embedder, SplitSettings(max_chars=200))
    build_index([long_page, other], root, fake_embedder, SplitSettings(max_chars=200))  # a second segment
    index = read_index(root)
    assert len(index.segments) == 2 and index.passage_count > 3  # the name is in the page's last passage only
    words = {"postgresql", "excel", "delet", "nowher"}
    assert index.mentioned(words, {"pg/delete.html"}) == {"postgresql", "delet"}
    assert index.mentioned(words, {"pg/insert.html"}) == {"excel"}
    assert index.mentioned(words, {"pg/delete.html", "pg/insert.html"}) == {"postgresql", "excel", "delet"}
    assert index.mentioned(words, {"gone.txt"}) == set()
