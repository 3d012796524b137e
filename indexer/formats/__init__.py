"""Readers of file formats. Each turns one file into an `Extracted` record, or raises
ValueError with a reason a user can act on (a corrupt file is a Skipped record, never a crash).
Each keeps to the `ReadLimits` it is given (limits.py), refusing with LimitExceeded, a
ValueError that names the limit; zip packages are read through archive.py."""

from __future__ import annotations

from dataclasses import dataclass

from cite.core.types import Heading


@dataclass(frozen=True)
class Extracted:
    """What a reader got out of a file: the fields of a Document besides its name and source,
    plus notes for the user (e.g. how many pages were read by OCR)."""

    text: str
    title: str = ""
    pages: tuple[int, ...] = ()
    headings: tuple[Heading, ...] = ()
    notes: tuple[str, ...] = ()
