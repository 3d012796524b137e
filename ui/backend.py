"""What the web UI's handlers share: the index folder, the embedder, and a live Engine.

No Gradio here: the handlers in `ui.web` take a Backend, so they can be called (and tested)
without a page.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.config import Settings, SplitSettings, load_settings
from core.embedder import Embedder, default_embedder
from core.errors import IndexMissing
from core.store import current_version, read_manifest
from core.types import Document
from eval.report import REPORTS
from indexer.build import build_index
from indexer.loaders import load_paths
from retriever.engine import Engine
from retriever.generate import chat_model_from_env

UPLOAD_PREFIX = "uploads/"
DOCUMENT_COLUMNS = ("document", "passages", "characters", "indexed", "source")


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
                        f"No index at {self.root} yet: add documents in the Documents tab, or run `cite index`."
                    )
                self._engine = Engine(self.root, self.embedder, self.settings, chat_model_from_env())
            return self._engine

    def document_rows(self) -> list[list[Any]]:
        """One row per indexed document, in DOCUMENT_COLUMNS order, sorted by name."""
        if current_version(self.root) is None:
            return []
        manifest = read_manifest(self.root)
        return [
            [r.doc, r.passages, f"{r.chars:,}", r.indexed_at.replace("T", " ")[:19], _source_label(r.source)]
            for r in sorted(manifest.documents.values(), key=lambda r: r.doc)
        ]

    def document_names(self) -> list[str]:
        return [row[0] for row in self.document_rows()]

    def add_files(
        self, paths: Sequence[str], progress: Callable[[int, int], None] | None = None
    ) -> tuple[list[str], list[str]]:
        """Indexes uploaded files as `uploads/<name>`.

        Returns:
            (the documents added or changed, the problems with the files that were skipped).
        """
        problems, documents = [], []
        for path in paths:
            loaded = load_paths([Path(path)])
            problems += [f"{Path(s.path).name}: {s.reason}" for s in loaded.skipped]
            documents += [as_upload(d) for d in loaded.documents]
        if not documents:
            return [], problems or ["No file to add."]
        report = build_index(documents, self.root, self.embedder, SplitSettings(**self._split()), progress, scope=set())
        return report.added + report.changed, problems

    def remove(self, names: Sequence[str]) -> list[str]:
        """Takes documents out of the index; returns the ones removed."""
        report = build_index([], self.root, self.embedder, SplitSettings(**self._split()), scope=set(), remove=names)
        return report.removed

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
