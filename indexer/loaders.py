"""Files on disk -> Documents. Each unreadable file becomes a Skipped record, never a crash."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from core.types import Document

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
DOCUMENT_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf"}
DEFAULT_MAX_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Skipped:
    """A file that could not be indexed, and why, in words a user can act on."""

    path: str
    reason: str


@dataclass(frozen=True)
class Loaded:
    documents: list[Document]
    skipped: list[Skipped]


def load_paths(paths: Iterable[Path], max_bytes: int = DEFAULT_MAX_BYTES) -> Loaded:
    """Reads files and folders (recursively). Doc names are relative to the folder given,
    or the file name for a file given directly. A `.jsonl` file named directly is a corpus of
    `{"_id", "title", "text"}` records; in a folder scan .jsonl files are data, not documents."""
    documents: list[Document] = []
    skipped: list[Skipped] = []
    for path in paths:
        if not path.exists():
            skipped.append(Skipped(str(path), "no such file or folder"))
            continue
        base = path if path.is_dir() else path.parent
        for file in _files_under(path, skipped):
            name = file.relative_to(base).as_posix()
            try:
                documents.extend(replace(d, source=source_of(path)) for d in _read_file(file, name, max_bytes))
            except (OSError, ValueError) as error:
                skipped.append(Skipped(name, str(error)))
    return Loaded(_unique(documents, skipped), skipped)


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


def _read_file(file: Path, name: str, max_bytes: int) -> list[Document]:
    suffix = file.suffix.lower()
    if suffix not in DOCUMENT_SUFFIXES and suffix != ".jsonl":
        raise ValueError(
            f"unsupported file type '{suffix or file.name}'; cite reads {', '.join(sorted(DOCUMENT_SUFFIXES))}, .jsonl"
        )
    size = file.stat().st_size
    if size > max_bytes:
        raise ValueError(f"larger than the {max_bytes // (1024 * 1024)} MB limit ({size // (1024 * 1024)} MB)")
    if suffix == ".jsonl":
        return list(_read_jsonl_records(file))
    if suffix == ".pdf":
        text = _pdf_text(file)
    else:
        text = decode_text(file.read_bytes())
        if suffix in HTML_SUFFIXES:
            text = _html_text(text)
    if not text.strip():
        raise ValueError("empty: no text to index")
    return [Document(doc=name, text=text)]


def decode_text(data: bytes) -> str:
    """Decodes UTF-8 (with or without BOM) or UTF-16 with a BOM; refuses binary data."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:8192]:
        raise ValueError("looks binary (contains NUL bytes), not a text document")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"not valid UTF-8 (byte {error.start}); convert it, e.g. `iconv -f latin1 -t utf-8`") from None


def _read_jsonl_records(file: Path) -> Iterator[Document]:
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                doc, text = str(record["_id"]), str(record["text"])
            except (ValueError, KeyError, TypeError):
                raise ValueError(f'line {number} is not a {{"_id", "title", "text"}} record') from None
            if text.strip():
                yield Document(doc=doc, text=text, title=str(record.get("title") or ""))


def _html_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    return soup.get_text("\n\n", strip=True)


def _pdf_text(file: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(file)
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not a readable PDF ({error})") from None
    return "\n\n".join(pages)


def _unique(documents: list[Document], skipped: list[Skipped]) -> list[Document]:
    """Keeps the first document of each name; two folders with the same file name clash."""
    seen: dict[str, Document] = {}
    for document in documents:
        if document.doc in seen:
            skipped.append(Skipped(document.doc, "another document has the same name; kept the first"))
        else:
            seen[document.doc] = document
    return list(seen.values())
