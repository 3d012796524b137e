"""The segment store: documents come back as they went in; one compatibility check."""

from dataclasses import replace

import pytest

from core.config import SplitSettings
from core.lexical import TOKENIZER_NAME
from core.store import document_from_json, incompatibility, read_index
from core.types import Document, Heading
from indexer.build import build_index
from tests.conftest import FakeEmbedder

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


@pytest.mark.parametrize("kind", ["flat-ip", "hnsw32-ip"])
def test_dense_index_kinds_are_built_and_searchable(kind):
    import numpy as np

    from core.store import HNSW_EF_SEARCH, new_dense_index, ready_to_search

    index = new_dense_index(kind, 4)
    vectors = np.eye(4, dtype=np.float32)
    index.add(vectors)
    ready_to_search(index)
    if kind.startswith("hnsw"):
        assert index.hnsw.efSearch == HNSW_EF_SEARCH
    assert index.search(vectors[2:3], 1)[1][0][0] == 2


def test_an_unknown_dense_index_kind_is_refused():
    from core.store import new_dense_index

    with pytest.raises(ValueError, match="Unknown dense index kind"):
        new_dense_index("ivf-ip", 4)
