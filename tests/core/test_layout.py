from cite.core.config import SplitSettings
from cite.core.layout import body_spans, citation, page_at, sections, sections_at
from cite.core.types import Document, Heading
from cite.indexer.splitter import split_document


def manual(more: str = "") -> Document:
    """Two pages; a chapter heading and a subsection, each a line of its own; `more` ends each body."""
    parts = [
        f"Preface text comes first. It has two sentences.{more}\n",
        "2 Objects\n",
        f"Objects hold values. Every object has a type.{more}\n",
        "2.1.8 Lazy arguments\n",
        f"Arguments are evaluated when first used. This saves work.{more}\n",
    ]
    text = "".join(parts)
    offsets = [sum(map(len, parts[:i])) for i in range(len(parts))]
    headings = (
        Heading(offsets[1], offsets[1] + len("2 Objects"), 1),
        Heading(offsets[3], offsets[3] + len("2.1.8 Lazy arguments"), 2),
    )
    return Document("manual.pdf", text, pages=(0, offsets[3]), headings=headings)


def test_a_span_over_a_page_break_names_both_pages():
    doc = manual()
    turn = doc.pages[1]

    def pages(document: Document, start: int, end: int) -> tuple[int | None, int | None]:
        cited = citation(1, document, start, end)
        assert cited.quote == document.text[start:end]
        return cited.page, cited.last_page

    assert pages(doc, 0, turn) == (1, None)  # ends on the page's last character
    assert pages(doc, turn - 10, turn + 10) == (1, 2)
    assert pages(doc, turn, turn) == (2, None)  # empty: where it starts
    assert pages(Document("a.txt", "No pages."), 0, 5) == (None, None)


def test_page_at_counts_physical_pages_from_one():
    doc = manual()
    assert page_at(doc, 0) == 1
    assert page_at(doc, doc.pages[1] - 1) == 1
    assert page_at(doc, doc.pages[1]) == 2
    assert page_at(doc, len(doc.text)) == 2
    assert page_at(Document("a.txt", "no pages"), 3) is None


def test_sections_exclude_heading_lines_and_carry_their_path():
    doc = manual()
    found = sections(doc)
    assert [s.path for s in found] == ["", "2 Objects", "2 Objects > 2.1.8 Lazy arguments"]
    bodies = [doc.text[s.start : s.end].strip() for s in found]
    assert bodies[1] == "Objects hold values. Every object has a type."
    assert not any("Lazy arguments" in body for body in bodies)


def test_a_heading_of_the_same_level_replaces_its_sibling():
    text = "A\nbody a.\nB\nbody b.\nC\nbody c.\n"
    starts = [text.index(t + "\n") for t in "ABC"]
    doc = Document(
        "d.md",
        text,
        headings=(
            Heading(starts[0], starts[0] + 1, 1),
            Heading(starts[1], starts[1] + 1, 2),
            Heading(starts[2], starts[2] + 1, 1),
        ),
    )
    assert [s.path for s in sections(doc)] == ["A", "A > B", "C"]


def test_sections_too_big_to_share_a_passage_are_split_apart_and_know_their_page_and_section():
    doc = manual(more=" A third sentence makes it long.")
    passages = split_document(doc, SplitSettings(max_chars=100))  # no two bodies fit in 100 characters
    assert [(p.section, p.page) for p in passages] == [
        ("", 1),
        ("2 Objects", 1),
        ("2 Objects > 2.1.8 Lazy arguments", 2),
    ]
    lazy = "Arguments are evaluated when first used. This saves work. A third sentence makes it long."
    assert passages[2].text == lazy
    for passage in passages:
        assert doc.text[passage.start : passage.end].split() == passage.text.split()


def test_short_sections_share_a_passage_and_each_sentence_keeps_its_own_section():
    """A heading every few sentences made passages of a sentence or two, which lost to a
    neighbour's longer passage; heading lines are still never quoted."""
    doc = manual()
    (passage,) = split_document(doc, SplitSettings(max_chars=1000))
    assert (passage.section, passage.page) == ("", 1)
    assert doc.text[passage.start : passage.end].split() == passage.text.split()
    bodies = body_spans(doc, passage.start, passage.end)
    quoted = [doc.text[a:b] for a, b in bodies]
    assert not any("Lazy arguments" in part or "2 Objects" in part for part in quoted)
    offsets = [0, doc.text.index("Objects hold"), doc.text.index("Arguments are")]
    assert sections_at(doc, offsets) == ["", "2 Objects", "2 Objects > 2.1.8 Lazy arguments"]


def test_a_document_without_headings_splits_as_before():
    text = "One sentence here. " * 80
    passages = split_document(Document("plain.txt", text), SplitSettings(max_chars=300))
    assert len(passages) > 3
    assert all(p.section == "" and p.page is None for p in passages)
