"""Folders kept in sync with an index: a change on disk re-runs the incremental indexer.

`FolderSync` watches folders (inotify through `watchfiles`, or polling for network file
systems, where inotify hears nothing), waits for a burst of changes to end, waits again until
the files that changed have stopped changing (an editor or a copy still writing), then calls
its `sync` function once for the whole burst. `sync` re-indexes the folders the way
`cite index FOLDER` does: documents are compared by content hash, so only new or changed ones
are embedded, and those gone from the folders are removed; a rename is one of each.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cite.indexer.loaders import DOCUMENT_SUFFIXES

log = logging.getLogger(__name__)

DEBOUNCE_MS = 400  # a burst of changes (a folder copied in) ends after this much quiet
SETTLE_S = 0.5  # a changed file counts as written once its size and time stay the same this long
SETTLE_TRIES = 120  # ~1 minute of a file still growing before it is indexed as it is


@dataclass(frozen=True)
class SyncState:
    """What a user sees of the sync: folders watched, the last sync and what waits."""

    folders: tuple[str, ...]
    polling: bool
    last_sync: float | None = None  # time.time() of the last finished sync
    last_result: str = ""  # e.g. "2 added, 1 removed"
    waiting: int = 0  # changed files heard and not yet indexed
    error: str = ""  # the last sync's failure, if it failed

    def describe(self) -> str:
        """One line: "Watching 2 folders · last sync 12:03:04 (2 added) · 3 files waiting"."""
        parts = [f"Watching {len(self.folders)} folder{'s' if len(self.folders) != 1 else ''}"]
        parts[0] += " (polling)" if self.polling else ""
        if self.last_sync is not None:
            when = time.strftime("%H:%M:%S", time.localtime(self.last_sync))
            parts.append(f"last sync {when}" + (f" ({self.last_result})" if self.last_result else ""))
        if self.waiting:
            parts.append(f"{self.waiting} file{'s' if self.waiting != 1 else ''} waiting")
        if self.error:
            parts.append(f"last sync failed: {self.error}")
        return " · ".join(parts)


def is_document(path: str | Path) -> bool:
    """A file the indexer reads, and not an editor's or a downloader's temporary file."""
    path = Path(path)
    name = path.name
    if name.startswith((".", "~$", "#")) or name.endswith(("~", ".tmp", ".part", ".crdownload", ".swp")):
        return False
    return path.suffix.lower() in DOCUMENT_SUFFIXES


@dataclass
class FolderSync:
    """Watches `folders` on a thread of its own and calls `sync(folders)` after each burst of
    changes to their documents.

    Args:
        folders: the folders to watch (recursively).
        sync: re-indexes the folders; returns a short description of what changed (or None).
            It runs on the watcher's thread, one call at a time.
        poll: poll the folders instead of inotify (network file systems).
    """

    folders: list[Path]
    sync: Callable[[list[Path]], str | None]
    poll: bool = False
    debounce_ms: int = DEBOUNCE_MS
    settle_s: float = SETTLE_S
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _state: SyncState | None = None
    ready: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.folders = [Path(folder).resolve() for folder in self.folders]
        self._state = SyncState(tuple(map(str, self.folders)), self.poll)

    def start(self) -> FolderSync:
        self._thread = threading.Thread(target=self._watch, name="cite-folder-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def state(self) -> SyncState:
        with self._lock:
            assert self._state is not None
            return self._state

    def run_forever(self, on_ready: Callable[[], None] = lambda: None) -> None:
        """Watches until interrupted (`cite index --watch`); `on_ready` runs once changes are
        seen, so that a "Watching" said there is true: a file saved just before went unseen."""
        self.start()
        try:
            self.ready.wait()
            on_ready()
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)  # wakes for Ctrl-C, which only this thread receives
        finally:
            self.stop()

    def _update(self, **changes: Any) -> None:
        from dataclasses import replace

        with self._lock:
            self._state = replace(self._state, **changes)

    def _watch(self) -> None:
        import watchfiles

        changes = watchfiles.watch(
            *self.folders,
            watch_filter=lambda _, path: is_document(path) and not _hidden(path, self.folders),
            debounce=self.debounce_ms,
            step=50,
            stop_event=self._stop,
            force_polling=self.poll,
            poll_delay_ms=300,
            yield_on_timeout=True,  # lets `ready` be set once the watcher is running
            rust_timeout=1000,
            raise_interrupt=False,
        )
        for batch in changes:
            self.ready.set()
            if self._stop.is_set():
                break
            if not batch:
                continue
            paths = {path for _, path in batch}
            self._update(waiting=len(paths))
            self._settle(paths)
            try:
                result = self.sync(self.folders) or ""
                self._update(last_sync=time.time(), last_result=result, waiting=0, error="")
            except Exception as error:  # noqa: BLE001 - a failed sync is shown and retried on the next change
                log.exception("folder sync failed")
                self._update(last_sync=time.time(), waiting=0, error=str(error)[:300])

    def _settle(self, paths: Iterable[str]) -> None:
        """Waits until the files that changed stop changing (size and modification time)."""
        before = _stats(paths)
        for _ in range(SETTLE_TRIES):
            if self._stop.wait(self.settle_s):
                return
            now = _stats(paths)
            if now == before:
                return
            before = now


def _stats(paths: Iterable[str]) -> dict[str, tuple[int, int] | None]:
    stats: dict[str, tuple[int, int] | None] = {}
    for path in paths:
        try:
            stat = Path(path).stat()
            stats[path] = (stat.st_size, stat.st_mtime_ns)
        except OSError:
            stats[path] = None  # gone (deleted or renamed): nothing to wait for
    return stats


def _hidden(path: str, folders: list[Path]) -> bool:
    """Inside a hidden folder of a watched one (the indexer skips those too: .git, .cite)."""
    for folder in folders:
        try:
            parts = Path(path).resolve().relative_to(folder).parts
        except ValueError:
            continue
        return any(part.startswith(".") for part in parts)
    return False
