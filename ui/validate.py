"""Every value a user or a program sends, checked at the edge: one function per input.

The CLI, the Gradio handlers and HTTP endpoints, and the JSON API call these before anything
else runs, so each refusal is the same one-line message naming what is allowed, whichever
door the value came through. Pure functions: they read no files and load no models.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from cite.core.config import DEFAULT_K as DEFAULT_K  # the doors' default k, stated once there
from cite.core.errors import CiteError
from cite.indexer.loaders import DEFAULT_MAX_BYTES, DOCUMENT_SUFFIXES
from cite.retriever.search import MAX_QUERY_CHARS, MAX_QUESTION_CHARS, check_query, check_question

K_MIN, K_MAX = 1, 100
MAX_TURNS = 100  # messages in a chat history (user and assistant together)
MAX_TURN_CHARS = 20_000  # one message; an assistant's answer with its sources fits
MAX_UPLOADS = 20  # files in one upload
MAX_UPLOAD_BYTES = DEFAULT_MAX_BYTES  # the loader's own limit, refused before the file is read
MAX_NAME_CHARS = 255  # a file name on every common file system
MAX_NAME_BYTES = 255  # the same limit counted as ext4, XFS, Btrfs and APFS count it: UTF-8 bytes
MAX_REMOVALS = 1000  # documents in one removal
ROLES = ("user", "assistant", "system")


class BadInput(CiteError, ValueError):
    """A value outside what an input allows. A ValueError too, so pydantic reports it as a 422."""


def k(value: Any) -> int:
    """How many passages: an integer from K_MIN to K_MAX (a whole float such as 5.0 counts).

    Raises:
        BadInput: for anything else (a negative k would be taken as a slice; a huge one ranks
            and serialises the whole index).
    """
    allowed = f"k must be a whole number from {K_MIN} to {K_MAX}"
    if isinstance(value, bool):
        raise BadInput(f"{allowed}, not true/false.")
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise BadInput(f"{allowed}, not {_shown(value)}.")
    if not K_MIN <= value <= K_MAX:
        raise BadInput(f"{allowed}, not {value}.")
    return value


def question(value: Any) -> str:
    """A question to answer (`ask`), as the retriever will read it (control characters out,
    outer space stripped).

    Raises:
        BadQuestion: when nothing is left.
        BadInput: when it is not text, or longer than MAX_QUESTION_CHARS once cleaned (the
            retriever would silently cut it there).
    """
    advice = f"ask in at most {MAX_QUESTION_CHARS:,} (to find where a passage comes from, search with it)"
    _text_within(value, "question", MAX_QUESTION_CHARS, advice)
    return check_question(value)


def query(value: Any) -> str:
    """A search query (`search`), cleaned as `question` cleans it. It may be a paragraph (a
    passage pasted to find where it comes from, a BEIR argument): up to MAX_QUERY_CHARS.

    Raises:
        BadQuestion: when nothing is left.
        BadInput: when it is not text, or longer than MAX_QUERY_CHARS once cleaned.
    """
    advice = f"search with at most {MAX_QUERY_CHARS:,} (a passage, not a whole document)"
    _text_within(value, "query", MAX_QUERY_CHARS, advice)
    return check_query(value)


def _text_within(value: Any, what: str, limit: int, advice: str) -> None:
    """Refuses a `what` that is not text, or longer than `limit` characters once cleaned."""
    if not isinstance(value, str):
        raise BadInput(f"The {what} must be text, not {_shown(value)}.")
    length = cleaned_length(value)
    if length > limit:
        raise BadInput(f"The {what} is {length:,} characters long; {advice}.")


def cleaned_length(text: str) -> int:
    """len(check_question(text)) before its cut: check_question turns every non-printable
    character into a space and strips the ends, so only the ends' blank characters go."""
    start, end = 0, len(text)
    while start < end and _blank(text[start]):
        start += 1
    while end > start and _blank(text[end - 1]):
        end -= 1
    return end - start


def history(value: Any) -> list[str]:
    """The user's earlier questions, oldest first, from a chat history.

    Accepts None, a list of questions (strings), or a list of `{"role", "content"}` messages
    whose content is a string or a list of `{"type": "text", "text"}` parts (Gradio's Chatbot
    sends the latter); only user messages' text is kept.

    Raises:
        BadInput: for another shape, more than MAX_TURNS messages, or a message longer than
            MAX_TURN_CHARS.
    """
    if value is None:
        return []
    shape = 'a list of questions, or of {"role": "user" or "assistant", "content": text} messages'
    if not isinstance(value, list):
        raise BadInput(f"The history must be {shape}, not {_shown(value)}.")
    if len(value) > MAX_TURNS:
        raise BadInput(
            f"The history has {len(value)} messages; at most {MAX_TURNS} are read. Start a new conversation."
        )
    questions = []
    for number, turn in enumerate(value, start=1):
        if isinstance(turn, str):
            role, text = "user", turn
        elif isinstance(turn, dict) and turn.get("role") in ROLES and "content" in turn:
            role, text = turn["role"], _message_text(turn["content"])
            if text is None:
                raise BadInput(f"History message {number}'s content must be text, not {_shown(turn['content'])}.")
        else:
            raise BadInput(
                f"History message {number} must be text or a {{role, content}} message; the history is {shape}."
            )
        if len(text) > MAX_TURN_CHARS:
            raise BadInput(
                f"History message {number} is {len(text):,} characters long; each may have at most {MAX_TURN_CHARS:,}."
            )
        if role == "user" and text.strip():
            questions.append(text)
    return questions


def _message_text(content: Any) -> str | None:
    """A message's text: a string, or the text parts of a list of parts (files add nothing)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        texts = [part.get("text") for part in content if part.get("type") == "text"]
        if all(isinstance(text, str) for text in texts):
            return "\n".join(texts)
    return None


@dataclass(frozen=True)
class Upload:
    """One uploaded file: where the server stored it, and the base name it will be indexed under."""

    path: Path
    name: str


def uploads(paths: Any, sizes: Sequence[int] | None = None) -> list[Upload]:
    """The uploaded files, checked for count, name, type and size before any is read.

    Args:
        paths: the files' paths on the server (Gradio's temporary copies); their base names
            are what the user named them.
        sizes: their sizes in bytes (None: read from the files' metadata).

    Raises:
        BadInput: no file, more than MAX_UPLOADS, a bad name or type, or a file over
            MAX_UPLOAD_BYTES. The message names the file, never the server's path.
    """
    if paths is None or (isinstance(paths, list) and not paths):
        raise BadInput("Choose one or more files first.")
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(p, str | Path) for p in paths):
        raise BadInput(f"Files must be a list of uploaded files, not {_shown(paths)}.")
    if len(paths) > MAX_UPLOADS:
        raise BadInput(f"{len(paths)} files at once; add at most {MAX_UPLOADS} at a time.")
    checked = []
    for number, path in enumerate(paths):
        name = file_name(Path(path).name)
        size = Path(path).stat().st_size if sizes is None else sizes[number]
        if size > MAX_UPLOAD_BYTES:
            raise BadInput(f"{name} is {_megabytes(size)}; each file may have at most {_megabytes(MAX_UPLOAD_BYTES)}.")
        checked.append(Upload(Path(path), name))
    return checked


def file_name(value: Any) -> str:
    """A document's file name as given by a client: a plain base name of a readable type.

    Raises:
        BadInput: for a path (`../x`, `a/b`, `C:\\x`), `.` or `..`, control characters, a name
            over MAX_NAME_CHARS characters or MAX_NAME_BYTES bytes of UTF-8 (a file system
            refuses a longer one however few characters it has), or a type cite does not read.
    """
    if not isinstance(value, str):
        raise BadInput(f"A file name must be text, not {_shown(value)}.")
    if not value.strip():
        raise BadInput("A file has no name; name it, e.g. notes.txt.")
    if len(value) > MAX_NAME_CHARS:
        raise BadInput(f"A file name is {len(value):,} characters long; at most {MAX_NAME_CHARS} are allowed.")
    if any(unicodedata.category(ch)[0] == "C" for ch in value):  # surrogates too: UTF-8 cannot encode them
        raise BadInput(f"The file name {_shown(value)} has control characters; rename the file.")
    size = len(value.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise BadInput(
            f"A file name is {size:,} bytes long in UTF-8 ({len(value):,} characters); file systems allow at most "
            f"{MAX_NAME_BYTES} bytes, so rename the file shorter."
        )
    if value in (".", "..") or PurePosixPath(value).name != value or PureWindowsPath(value).name != value:
        raise BadInput(f"{_shown(value)} is a path; send the file's own name only, e.g. notes.txt.")
    suffix = PurePosixPath(value).suffix.lower()
    if suffix not in DOCUMENT_SUFFIXES:
        raise BadInput(f"{value} is not a type cite reads; use {', '.join(sorted(DOCUMENT_SUFFIXES))}.")
    return value


def document_names(value: Any) -> list[str]:
    """Names of indexed documents to remove: a non-empty list of strings (at most MAX_REMOVALS).

    Raises:
        BadInput: for another shape. Names not in the index are the index's business.
    """
    if value is None or value == []:
        raise BadInput("Pick the documents to remove first.")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        raise BadInput(f"Documents to remove must be a list of document names, not {_shown(value)}.")
    if len(value) > MAX_REMOVALS:
        raise BadInput(f"{len(value)} documents at once; remove at most {MAX_REMOVALS} at a time.")
    return value


def _blank(ch: str) -> bool:
    return ch.isspace() or not ch.isprintable()


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _shown(value: Any) -> str:
    """A short, safe rendering of a bad value for a message (its type, or a clipped repr)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        clipped = value if len(value) <= 40 else value[:39] + "…"
        return repr(clipped)
    if isinstance(value, int | float):
        return repr(value)
    return f"a {type(value).__name__}"
