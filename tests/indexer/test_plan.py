"""plan_index: what an index run adds, re-embeds, copies, retires and merges, from plain data."""

import pytest
from cite.core.errors import DocumentError
from cite.core.store import DocumentRecord
from cite.core.types import Document, Heading
from cite.indexer.plan import MAX_SEGMENTS, IndexPlan, SegmentContents, plan_index


def doc(name: str, text: str = "", source: str = "docs") -> Document:
    return Document(name, text or f"The text of {name}.", source=source)


def stored(*documents: Document, passages: int = 1) -> dict[str, DocumentRecord]:
    """Manifest records of `documents` as an earlier run indexed them."""
    return {
        d.doc: DocumentRecord(d.doc, d.sha256, d.title, len(d.text), passages, "2026-01-01T00:00:00", d.source)
        for d in documents
    }


def segment(name: str, *documents: str, passages: int | None = None) -> SegmentContents:
    return SegmentContents(name, frozenset(documents), len(documents) if passages is None else passages)


A, B, C = doc("a.txt"), doc("b.txt"), doc("c.txt")


def test_a_first_run_embeds_everything_into_one_new_segment():
    plan = plan_index([C, A, B], {}, [])
    assert plan == IndexPlan(
        documents=("a.txt", "b.txt", "c.txt"),
        added=("a.txt", "b.txt", "c.txt"),
        changed=(),
        unchanged=(),
        removed=(),
        keep=(),
        retire=(),
        merge=(),
        copy=(),
    )
    assert plan.embed == ("a.txt", "b.txt", "c.txt") and not plan.up_to_date


def test_the_same_documents_again_are_up_to_date():
    plan = plan_index([A, B], stored(A, B), [segment("s1", "a.txt", "b.txt")])
    assert plan.up_to_date and plan.unchanged == ("a.txt", "b.txt") and plan.embed == ()
    assert plan.keep == ("s1",) and plan.retire == plan.merge == plan.copy == ()


def test_a_changed_document_retires_its_segment_and_its_neighbours_move_unembedded():
    changed = doc("b.txt", "Bees dance to tell where flowers are.")
    segments = [segment("s1", "a.txt", "b.txt"), segment("s2", "c.txt")]
    plan = plan_index([A, changed, C], stored(A, B, C), segments)
    assert (plan.added, plan.changed, plan.unchanged) == ((), ("b.txt",), ("a.txt", "c.txt"))
    assert plan.embed == ("b.txt",)
    assert (plan.keep, plan.retire, plan.merge, plan.copy) == (("s2",), ("s1",), (), ("a.txt",))


def test_a_document_whose_reader_now_finds_its_headings_is_changed():
    text = "4.1 What is a live system?\nA live system boots from a USB stick."
    before = doc("live.epub", text)
    after = Document("live.epub", text, source="docs", headings=(Heading(0, 26, 2),))
    plan = plan_index([after], stored(before), [segment("s1", "live.epub")])
    assert plan.changed == ("live.epub",) and plan.embed == ("live.epub",)


def test_a_new_document_adds_a_segment_and_keeps_the_old_ones():
    new = doc("new.txt")
    plan = plan_index([A, B, new], stored(A, B), [segment("s1", "a.txt", "b.txt")])
    assert plan.added == ("new.txt",) and plan.documents == ("a.txt", "b.txt", "new.txt")
    assert (plan.keep, plan.retire, plan.copy) == (("s1",), (), ())


def test_a_document_gone_from_the_folder_is_removed():
    segments = [segment("s1", "a.txt"), segment("s2", "b.txt", "c.txt")]
    plan = plan_index([A, B], stored(A, B, C), segments)
    assert plan.removed == ("c.txt",) and plan.embed == () and not plan.up_to_date
    assert (plan.keep, plan.retire, plan.copy) == (("s1",), ("s2",), ("b.txt",))


def test_scope_keeps_documents_of_other_sources_and_remove_drops_any():
    upload = doc("uploads/owls.txt", source="upload")
    old = stored(A, B, upload)
    segments = [segment("s1", "a.txt", "b.txt", "uploads/owls.txt")]
    # This run speaks for "docs" only, which now holds a.txt alone: b.txt goes, the upload stays.
    plan = plan_index([A], old, segments, scope={"docs"})
    assert plan.documents == ("a.txt", "uploads/owls.txt") and plan.removed == ("b.txt",)
    assert plan.copy == ("a.txt", "uploads/owls.txt")
    # Without a scope the run speaks for every source: the upload goes too.
    assert plan_index([A], old, segments).removed == ("b.txt", "uploads/owls.txt")
    # `remove` drops a document whatever its source, even one given again.
    plan = plan_index([A], old, segments, scope=set(), remove={"uploads/owls.txt", "a.txt"})
    assert plan.documents == ("b.txt",) and plan.removed == ("a.txt", "uploads/owls.txt")


def test_beyond_max_segments_the_smallest_merge_first():
    names = [f"d{i}.txt" for i in range(MAX_SEGMENTS)]
    documents = [doc(name) for name in names]
    # Segment i holds one document of i + 1 passages, so s0 is the smallest, then s1.
    segments = [segment(f"s{i}", name, passages=i + 1) for i, name in enumerate(names)]
    new = doc("new.txt")
    plan = plan_index([*documents, new], stored(*documents), segments)
    assert plan.merge == ("s0",) and plan.retire == () and plan.copy == ("d0.txt",)
    assert plan.keep == tuple(f"s{i}" for i in range(1, MAX_SEGMENTS))
    assert len(plan.keep) + 1 == MAX_SEGMENTS  # with the new segment, at the limit and not over it

    # A retired segment counts against the limit no more: only what is left over it merges.
    changed = doc("d7.txt", "A different text.")
    plan = plan_index([*documents[:-1], changed, new], stored(*documents), segments)
    assert plan.retire == ("s7",) and plan.merge == ()


def test_nothing_to_index_is_an_error():
    with pytest.raises(DocumentError, match="No documents to index"):
        plan_index([], {}, [])
    with pytest.raises(DocumentError, match="No documents to index"):
        plan_index([A], stored(A), [segment("s1", "a.txt")], remove={"a.txt"})


def test_two_documents_of_one_name_are_an_error():
    with pytest.raises(DocumentError, match="both named 'a.txt'"):
        plan_index([A, doc("a.txt", "Another text.")], {}, [])
