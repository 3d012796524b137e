import json
import os

from cite.indexer.loaders import load_paths


def test_reads_text_markdown_and_names_relative_to_folder(corpus):
    loaded = load_paths([corpus])
    assert sorted(d.doc for d in loaded.documents) == ["bees.txt", "rivers.md"]
    assert loaded.skipped == []


def test_bad_files_are_skipped_with_reasons(tmp_path):
    (tmp_path / "good.txt").write_text("Fine text here.", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("   \n", encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02garbage")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    loaded = load_paths([tmp_path])
    assert [d.doc for d in loaded.documents] == ["good.txt"]
    reasons = {s.path: s.reason for s in loaded.skipped}
    assert "empty" in reasons["empty.txt"]
    assert "binary" in reasons["binary.txt"]
    assert "UTF-8" in reasons["latin1.txt"]
    assert "PDF" in reasons["broken.pdf"]


def test_utf16_with_bom_is_decoded(tmp_path):
    (tmp_path / "wide.txt").write_bytes("Grüße aus Kasan.".encode("utf-16"))
    assert load_paths([tmp_path]).documents[0].text == "Grüße aus Kasan."


def test_html_text_without_scripts(tmp_path):
    (tmp_path / "page.html").write_text(
        "<html><script>alert(1)</script><h1>Title</h1><p>Body text.</p></html>", encoding="utf-8"
    )
    text = load_paths([tmp_path]).documents[0].text
    assert "Title" in text and "Body text." in text and "alert" not in text


def test_html_paragraph_numbers_in_labels_are_not_text(tmp_path):
    # SiSU's markup: each paragraph numbered by a label before it.
    paragraph = '<div class="substance"><label class="ocn"><a href="#o{n}">{n}</a></label><p id="o{n}">{text}</p></div>'
    body = paragraph.format(n=164, text="A live system boots from a removable medium.")
    body += paragraph.format(n=165, text="It is made from the following parts.")
    (tmp_path / "page.html").write_text(f"<html><body>{body}</body></html>", encoding="utf-8")
    text = load_paths([tmp_path]).documents[0].text
    assert text == "A live system boots from a removable medium.\n\nIt is made from the following parts."


def test_html_bold_numbered_titles_are_headings_where_no_h_tag_marks_them(tmp_path):
    # SiSU's markup: a chapter in <h1>, its sections as bold paragraphs.
    body = (
        "<h1>4. The basics</h1><p>This chapter is about images.</p>"
        '<p class="bold"><a name="h4.1"/>4.1 What is a live system?</p><p>A live system boots from USB.</p>'
        "<p><b>4.1.1 Web builder</b></p><p>It builds images online.</p>"
        "<p><b>2.5 litres</b> of water were used.</p><p><b>3.2 Not a title.</b></p>"
    )
    (tmp_path / "page.html").write_text(f"<html><body>{body}</body></html>", encoding="utf-8")
    [document] = load_paths([tmp_path]).documents
    found = [(document.text[h.start : h.end], h.level) for h in document.headings]
    assert found == [("4. The basics", 1), ("4.1 What is a live system?", 2), ("4.1.1 Web builder", 3)]


def test_jsonl_records_use_their_ids(tmp_path):
    rows = [{"_id": "d1", "title": "T1", "text": "First."}, {"_id": "d2", "title": "", "text": "Second."}]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    docs = load_paths([tmp_path / "corpus.jsonl"]).documents
    assert [(d.doc, d.title, d.text) for d in docs] == [("d1", "T1", "First."), ("d2", "", "Second.")]


def test_symlink_out_of_the_folder_is_not_followed(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret", encoding="utf-8")
    folder = tmp_path / "docs"
    folder.mkdir()
    os.symlink(outside, folder / "link.txt")
    loaded = load_paths([folder])
    assert loaded.documents == []
    assert "outside" in loaded.skipped[0].reason


def test_missing_path_is_reported(tmp_path):
    loaded = load_paths([tmp_path / "nope"])
    assert loaded.skipped[0].reason == "no such file or folder"


def test_upload_names_cannot_leave_the_uploads_folder():
    from cite.core.types import Document
    from cite.ui.backend import as_upload

    upload = as_upload(Document("../../etc/evil.txt", "text"))
    assert upload.doc == "uploads/evil.txt" and upload.source == "upload"


def test_binary_html_is_skipped_and_notes_are_empty_for_plain_files(tmp_path):
    (tmp_path / "blob.html").write_bytes(b"<html>\x00\x01\x02</html>")
    (tmp_path / "fine.txt").write_text("Fine text here.", encoding="utf-8")
    loaded = load_paths([tmp_path])
    assert [d.doc for d in loaded.documents] == ["fine.txt"]
    assert "binary" in loaded.skipped[0].reason and loaded.notes == []


def test_every_document_suffix_has_a_reader(tmp_path):
    from cite.indexer.loaders import DOCUMENT_SUFFIXES

    for suffix in DOCUMENT_SUFFIXES:
        (tmp_path / f"file{suffix}").write_bytes(b"\x00")  # unreadable in any format
    loaded = load_paths([tmp_path])
    assert loaded.documents == [] and len(loaded.skipped) == len(DOCUMENT_SUFFIXES)
    assert all("unsupported" not in s.reason for s in loaded.skipped)
