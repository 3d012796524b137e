"""Files on disk -> Documents. Each unreadable file becomes a Skipped record, never a crash.

The formats' readers live in indexer.formats; this module walks folders, checks sizes, names
documents, and lets the HTML pages of one folder share what repeats on all of them (a site's menu).
Every reader keeps to the `ReadLimits` given (indexer.formats.limits), so a hostile file is
skipped with the limit it passed named; `indexer.isolated` runs all this in a worker process
with a memory limit, for files from strangers."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cite.core.types import Document
from cite.indexer.formats import Extracted
from cite.indexer.formats.limits import DEFAULT_LIMITS, LimitExceeded, ReadLimits, size_text

if TYPE_CHECKING:
    from cite.indexer.formats.html import HtmlPage

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
OFFICE_SUFFIXES = {".docx", ".pptx", ".odt", ".epub"}
DOCUMENT_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | OFFICE_SUFFIXES | {".pdf"}
DEFAULT_MAX_BYTES = DEFAULT_LIMITS.file_bytes


@dataclass(frozen=True)
class Skipped:
    """A file that could not be indexed, and why, in words a user can act on."""

    path: str
    reason: str


@dataclass(frozen=True)
class Note:
    """Something the user should know about a document that was indexed (e.g. pages read by OCR)."""

    path: str
    message: str


@dataclass(frozen=True)
class Loaded:
    documents: list[Document]
    skipped: list[Skipped]
    notes: list[Note] = field(default_factory=list)


def load_paths(paths: Iterable[Path], max_bytes: int | None = None, limits: ReadLimits = DEFAULT_LIMITS) -> Loaded:
    """Reads files and folders (recursively). Doc names are relative to the folder given,
    or the file name for a file given directly. A `.jsonl` file named directly is a corpus of
    `{"_id", "title", "text"}` records; in a folder scan .jsonl files are data, not documents.

    Args:
        paths: files and folders.
        max_bytes: the largest file read; None: `limits.file_bytes`.
        limits: what reading one file may cost; a file past one is skipped with the limit named.
    """
    if max_bytes is not None:
        limits = replace(limits, file_bytes=max_bytes)
    documents: list[Document] = []
    skipped: list[Skipped] = []
    notes: list[Note] = []
    for path in paths:
        if not path.exists():
            skipped.append(Skipped(str(path), "no such file or folder"))
            continue
        base = path if path.is_dir() else path.parent
        files = [(file, file.relative_to(base).as_posix()) for file in _files_under(path, skipped)]
        html = _html_by_folder(files, limits, skipped)
        for file, name in files:
            if file.suffix.lower() in HTML_SUFFIXES and file not in html.pages:
                continue  # already skipped, with its reason
            try:
                read, messages = _read_file(file, name, limits, html)
            except (OSError, ValueError) as error:
                skipped.append(Skipped(name, str(error)))
                continue
            documents.extend(replace(d, source=source_of(path)) for d in read)
            notes.extend(Note(name, message) for message in messages)
    return Loaded(_unique(documents, skipped), skipped, notes)


def source_of(path: Path) -> str:
    """How an index remembers where a document came from: the absolute path given."""
    return str(path.resolve())


def _files_under(path: Path, skipped: list[Skipped]) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    root = path.resolve()
    for file in sorted(path.rglob("*")):
        if any(part.startswith(".") for part in file.relative_to(path).parts):
            continue  # hidden files and folders, like .git or our own .cite
        if not file.is_file() or file.suffix.lower() not in DOCUMENT_SUFFIXES:
            continue
        if not file.resolve().is_relative_to(root):
            skipped.append(Skipped(file.relative_to(path).as_posix(), "a link to outside the folder; not followed"))
            continue
        yield file


@dataclass
class _HtmlFolders:
    """The HTML pages of a scan, parsed once, and the blocks each folder's pages share."""

    pages: dict[Path, HtmlPage] = field(default_factory=dict)
    common: dict[Path, frozenset[str]] = field(default_factory=dict)  # by folder, from common_blocks


def _html_by_folder(files: list[tuple[Path, str]], limits: ReadLimits, skipped: list[Skipped]) -> _HtmlFolders:
    from cite.indexer.formats.html import common_blocks, parse_html

    found = _HtmlFolders()
    by_folder: dict[Path, list[HtmlPage]] = defaultdict(list)
    for file, name in files:
        if file.suffix.lower() not in HTML_SUFFIXES:
            continue
        try:
            _check_size(file, limits.file_bytes)
            data = file.read_bytes()
            if not data.startswith((b"\xff\xfe", b"\xfe\xff")):
                _refuse_binary(data)
            page = parse_html(data)
        except (OSError, ValueError) as error:
            skipped.append(Skipped(name, str(error)))
            continue
        found.pages[file] = page
        by_folder[file.parent].append(page)
    found.common = {folder: common_blocks(pages) for folder, pages in by_folder.items()}
    return found


def _check_size(file: Path, max_bytes: int) -> None:
    size = file.stat().st_size
    if size > max_bytes:
        raise ValueError(f"larger than the {size_text(max_bytes)} limit ({size_text(size)})")


def _read_file(file: Path, name: str, limits: ReadLimits, html: _HtmlFolders) -> tuple[list[Document], tuple[str, ...]]:
    """The file's documents (a .jsonl corpus holds many) and its reader's notes."""
    suffix = file.suffix.lower()
    if suffix not in DOCUMENT_SUFFIXES and suffix != ".jsonl":
        raise ValueError(
            f"unsupported file type '{suffix or file.name}'; cite reads {', '.join(sorted(DOCUMENT_SUFFIXES))}, .jsonl"
        )
    _check_size(file, limits.file_bytes)
    if suffix == ".jsonl":
        return list(_read_jsonl_records(file, limits)), ()
    extracted = _extract(file, suffix, html, limits)
    limits.check_text(len(extracted.text))  # the readers without a TextBuilder of their own
    if not extracted.text.strip():
        raise ValueError("empty: no text to index")
    document = Document(name, extracted.text, extracted.title, pages=extracted.pages, headings=extracted.headings)
    return [document], extracted.notes


def _extract(file: Path, suffix: str, html: _HtmlFolders, limits: ReadLimits) -> Extracted:
    """The reader for the file's format (heavy libraries imported only when needed)."""
    if suffix in HTML_SUFFIXES:
        from cite.indexer.formats.html import html_extract

        return html_extract(html.pages[file], html.common.get(file.parent, frozenset()))
    if suffix == ".pdf":
        from cite.indexer.formats.pdf import read_pdf

        return read_pdf(file, limits=limits)
    if suffix == ".docx":
        from cite.indexer.formats.office import read_docx

        return read_docx(file, limits=limits)
    if suffix == ".pptx":
        from cite.indexer.formats.office import read_pptx

        return read_pptx(file, limits=limits)
    if suffix == ".odt":
        from cite.indexer.formats.office import read_odt

        return read_odt(file, limits=limits)
    if suffix == ".epub":
        from cite.indexer.formats.epub import read_epub

        return read_epub(file, limits=limits)
    from cite.indexer.formats.markdown import markdown_headings, rst_headings

    text = decode_text(file.read_bytes())
    if suffix in {".md", ".markdown"}:
        headings = markdown_headings(text)
    elif suffix == ".rst":
        headings = rst_headings(text)
    else:
        headings = ()
    title = " ".join(text[headings[0].start : headings[0].end].split()) if headings else ""
    return Extracted(text, title, (), headings)


def decode_text(data: bytes) -> str:
    """Decodes UTF-8 (with or without BOM) or UTF-16 with a BOM; refuses binary data."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    _refuse_binary(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"not valid UTF-8 (byte {error.start}); convert it, e.g. `iconv -f latin1 -t utf-8`") from None


def _refuse_binary(data: bytes) -> None:
    if b"\x00" in data[:8192]:
        raise ValueError("looks binary (contains NUL bytes), not a text document")


def _read_jsonl_records(file: Path, limits: ReadLimits) -> Iterator[Document]:
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                doc, text = str(record["_id"]), str(record["text"])
            except (ValueError, KeyError, TypeError):
                raise ValueError(f'line {number} is not a {{"_id", "title", "text"}} record') from None
            try:
                limits.check_text(len(text))
            except LimitExceeded as error:
                raise LimitExceeded(f"line {number}: {error}") from None
            if text.strip():
                yield Document(doc=doc, text=text, title=str(record.get("title") or ""))


def _unique(documents: list[Document], skipped: list[Skipped]) -> list[Document]:
    """Keeps the first document of each name; two folders with the same file name clash."""
    seen: dict[str, Document] = {}
    for document in documents:
        if document.doc in seen:
            skipped.append(Skipped(document.doc, "another document has the same name; kept the first"))
        else:
            seen[document.doc] = document
    return list(seen.values())
