"""What the web UI's handlers share: the index folder, the embedder, and a live Engine.

No Gradio here: the handlers in `ui.web_handlers` take a Backend, so they can be called (and tested)
without a page.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from cite.core.config import Settings, SplitSettings, load_settings
from cite.core.embedder import Embedder, default_embedder, for_serving
from cite.core.errors import CiteError, IndexBusy, IndexMissing
from cite.core.store import current_version, read_manifest
from cite.core.types import Document
from cite.eval.report import REPORTS
from cite.indexer.build import build_index
from cite.indexer.isolated import build_isolated, load_isolated
from cite.indexer.loaders import source_of
from cite.indexer.sync import FolderSync
from cite.retriever.engine import Engine
from cite.retriever.generate import chat_model_from_env
from cite.ui import validate

UPLOAD_PREFIX = "uploads/"
DOCUMENT_COLUMNS = ("document", "title", "passages", "characters", "indexed", "source")
WRITER_WAIT_S = 900  # how long a change waits for another process's writer (`cite index`)

Waiting = Callable[[str], None]
"""Hears a queued change's status while it waits its turn, e.g. "2 changes ahead of yours"."""


class WriterQueue:
    """First come, first served: one index writer at a time among this server's visitors.

    The index allows one writer (core.store.writer_lock refuses a second with IndexBusy);
    this queue makes the others wait their turn instead, and tells each where it stands.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._line: list[int] = []  # tickets, the writer's first
        self._issued = 0

    def waiting(self) -> int:
        """Changes queued behind the one being written."""
        with self._changed:
            return max(len(self._line) - 1, 0)

    @contextmanager
    def turn(self, waiting: Waiting | None = None) -> Iterator[None]:
        """Holds the writer's place for the `with` block, once every earlier change is done."""
        with self._changed:
            ticket, self._issued = self._issued, self._issued + 1
            self._line.append(ticket)
            told = None
            while self._line[0] != ticket:
                ahead = self._line.index(ticket)
                if waiting is not None and ahead != told:
                    waiting(f"Queued: {ahead} change{'s' if ahead > 1 else ''} ahead of yours")
                    told = ahead
                self._changed.wait(timeout=1.0)
        try:
            yield
        finally:
            with self._changed:
                self._line.remove(ticket)
                self._changed.notify_all()


class Backend:
    """The index folder, its settings and models, shared by every visitor of one `cite serve`."""

    def __init__(
        self,
        root: Path,
        embedder: Embedder | None = None,
        settings: Settings | None = None,
        reports: Path = REPORTS,
    ) -> None:
        """Args:
        root: the index folder (it need not exist yet: uploads create it).
        embedder: None loads the default model on first use.
        settings: None reads the index's settings.toml, or the defaults.
        reports: where eval reports go (`cite eval --report-dir`'s default).
        """
        self.root = Path(root)
        self.reports = Path(reports)
        self._embedder = embedder
        self.settings = settings or load_settings(self.root)
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self.writers = WriterQueue()
        self.sync: FolderSync | None = None  # set by `watch`

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    def reload_settings(self) -> None:
        """Picks up the index's settings.toml (after tuning): the next question uses them."""
        with self._lock:
            self.settings = load_settings(self.root)
            self._engine = None

    def engine(self) -> Engine:
        """The engine over the newest index.

        Raises:
            IndexMissing: until an index has been built.
        """
        with self._lock:
            if self._engine is None:
                if current_version(self.root) is None:
                    raise IndexMissing(
                        "No index yet: add documents in the Documents tab, or run `cite index --index FOLDER`."
                    )
                self._engine = Engine(self.root, for_serving(self.embedder), self.settings, chat_model_from_env())
            return self._engine

    def public_message(self, message: str) -> str:
        """A message fit for a remote client: the server's index folder named, not shown."""
        for path in sorted({str(self.root.resolve()), str(self.root)}, key=len, reverse=True):
            if path not in (".", ""):
                message = message.replace(path, "the index folder")
        return message

    def document_rows(self) -> list[list[Any]]:
        """One row per indexed document, in DOCUMENT_COLUMNS order, sorted by name."""
        if current_version(self.root) is None:
            return []
        manifest = read_manifest(self.root)
        return [
            [r.doc, r.title, r.passages, f"{r.chars:,}", r.indexed_at.replace("T", " ")[:19], _source_label(r.source)]
            for r in sorted(manifest.documents.values(), key=lambda r: r.doc)
        ]

    def document_records(self) -> list[dict[str, Any]]:
        """One `{"document", "title", "passages", "characters", "indexed", "source"}` per indexed document."""
        return [dict(zip(DOCUMENT_COLUMNS, row, strict=True)) for row in self.document_rows()]

    def page_image(self, doc: str, page: int, span: tuple[int, int]) -> bytes | None:
        """Page `page` of PDF `doc` as PNG bytes with `span` highlighted, read from the file it was
        indexed from; None when that file is not at hand (an upload, a moved folder) or unreadable."""
        from cite.indexer.formats.pdf import page_image

        document = self.engine().snapshot().index.documents.get(doc)
        if document is None or not doc.lower().endswith(".pdf"):
            return None
        source = Path(document.source)
        file = source / doc if source.is_dir() else source
        if not file.is_file():
            return None
        try:
            image = page_image(file, page, span, text=document.text, scale=1.5)
        except ValueError:
            return None
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()

    def document_names(self) -> list[str]:
        return [row[0] for row in self.document_rows()]

    def add_files(
        self,
        paths: Sequence[str | Path],
        progress: Callable[[int, int], None] | None = None,
        waiting: Waiting | None = None,
    ) -> tuple[list[str], list[str]]:
        """Indexes uploaded files as `uploads/<name>`, after the changes queued before it.

        Questions keep being answered from the current version meanwhile (the engine swaps
        the new one in when it is complete). Each file is read in a worker process with a
        memory and a time limit, and the documents are embedded and written in another
        (indexer.isolated): a hostile or huge file costs those workers, not the server.

        Returns:
            (the documents added or changed, the problems with the files that were skipped).

        Raises:
            BadInput: too many files, or a bad name, type or size (checked before any is read).
        """
        checked = validate.uploads(list(map(str, paths)))
        problems, documents = [], []
        for upload in checked:
            loaded = load_isolated([upload.path])  # one worker a file: a bad one costs no other
            problems += [f"{upload.name}: {s.reason}" for s in loaded.skipped]
            documents += [as_upload(d) for d in loaded.documents]
        if not documents:
            return [], problems or ["No file to add."]
        report = self._write(
            lambda split: build_isolated(documents, self.root, self.embedder, split, progress, scope=set()), waiting
        )
        return report.added + report.changed, problems

    def indexed_folders(self) -> list[Path]:
        """The folders `cite index` built this index from (uploads come from no folder)."""
        if current_version(self.root) is None:
            return []
        sources = {record.source for record in read_manifest(self.root).documents.values()}
        return sorted(Path(source) for source in sources if source != "upload" and Path(source).is_dir())

    def sync_folders(self, folders: Sequence[Path]) -> str:
        """Re-indexes `folders` as `cite index FOLDER...` does (new and changed documents embedded,
        vanished ones removed), in the writers' queue; says what changed.

        Raises:
            CiteError: the folders could not be read (nothing is changed then).
        """
        loaded = load_isolated(folders)
        if not loaded.documents and {s.path for s in loaded.skipped} >= {Path(f).name for f in folders}:
            # The reader died: an empty result must not read as "every document was deleted".
            raise CiteError(f"Could not read the folders: {loaded.skipped[0].reason}.")
        scope = {source_of(Path(folder)) for folder in folders}
        report = self._write(
            lambda split: build_isolated(loaded.documents, self.root, self.embedder, split, scope=scope), None
        )
        counts = {"added": report.added, "changed": report.changed, "removed": report.removed}
        return ", ".join(f"{len(names)} {what}" for what, names in counts.items() if names) or "no change"

    def watch(self, poll: bool = False) -> FolderSync | None:
        """Keeps the folders this index was built from in sync (None: it has none)."""
        folders = self.indexed_folders()
        if not folders:
            return None
        self.sync = FolderSync(folders, self.sync_folders, poll=poll).start()
        return self.sync

    def remove(self, names: Sequence[str], waiting: Waiting | None = None) -> list[str]:
        """Takes documents out of the index, after the changes queued before it; returns the ones removed."""
        names = validate.document_names(list(names) if isinstance(names, tuple) else names)
        report = self._write(
            lambda split: build_index([], self.root, self.embedder, split, scope=set(), remove=names), waiting
        )
        return report.removed

    def _write(self, write: Callable[[SplitSettings], Any], waiting: Waiting | None) -> Any:
        """`write(split)` in this server's writer queue, then past any other process's writer."""
        with self.writers.turn(waiting):
            deadline = time.monotonic() + WRITER_WAIT_S
            while True:
                try:
                    return write(SplitSettings(**self._split()))  # read in turn: the last change may have set it
                except (IndexBusy, IndexMissing) as error:
                    # IndexMissing with a version there: another program's writer swapped versions
                    # between our reading CURRENT and its manifest (a 409 once in a 10-minute soak).
                    if time.monotonic() > deadline or (
                        isinstance(error, IndexMissing) and current_version(self.root) is None
                    ):
                        raise
                    if waiting is not None:
                        waiting("Waiting for another program writing the index (e.g. `cite index`)")
                    time.sleep(0.2)

    def _split(self) -> dict[str, Any]:
        """Keep the index's own split settings, so adding a file never re-embeds the rest."""
        if current_version(self.root) is None:
            return {}
        return read_manifest(self.root).split


def as_upload(document: Document) -> Document:
    """An uploaded file's document, named `uploads/<file name>` whatever path it came with."""
    return replace(document, doc=UPLOAD_PREFIX + Path(document.doc).name, source="upload")


def _source_label(source: str) -> str:
    return "upload" if source == "upload" else (Path(source).name or source)
