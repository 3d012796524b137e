"""Which version is live, who may write, and loading (and verifying) the live version."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from cite.core.digest import sha256_of_files
from cite.core.errors import IndexBusy, IndexCorrupt, IndexIncompatible, IndexMissing
from cite.core.lexical import LexicalIndex
from cite.core.store.records import (
    _CRASHED,
    _CURRENT,
    _MANIFEST,
    _SEGMENTS,
    _WRITING,
    FORMAT_CHANGES,
    FORMAT_VERSION,
    Manifest,
    SegmentRecord,
)
from cite.core.store.segments import _read_segment
from cite.core.store.stored_index import StoredIndex

_SWITCHES_FOLLOWED = 8  # versions switched under one read before a reader gives up
Check = Literal["none", "stamps", "full"]


def segment_folder(root: Path, name: str) -> Path:
    """Where segment `name` of the index at `root` lies."""
    return root / _SEGMENTS / name


def current_version(root: Path) -> Path | None:
    """The live version folder, or None when no index was ever completed here.

    A writer may switch versions and delete the old one between our reading CURRENT and
    finding that version's manifest; CURRENT then names another version, and is read again:
    an index being switched is never reported missing."""
    pointer, named = root / _CURRENT, None
    for _ in range(_SWITCHES_FOLLOWED):
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except OSError:  # no CURRENT: nothing was ever completed here
            return None
        version = root / name
        if (version / _MANIFEST).is_file():
            return version
        if name == named:  # named twice, and no manifest: not a switch, an index damaged
            return None
        named = name
    return None


@contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Lets one writer at a time build an index in `root`; a second one fails at once.

    While it is held, ROOT/.writing names the writer's process; finding one left by a
    writer that died marks the index as needing full checksums (`writer_crashed`) until the
    next version is complete."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusy(
                f"Another `cite index` is writing {root} right now; wait for it to finish and run again."
            ) from None
        marker = root / _WRITING
        try:
            if marker.exists():  # we hold the lock, so its writer is gone: it died mid-write
                os.replace(marker, root / _CRASHED)
            marker.write_text(str(os.getpid()), encoding="utf-8")
            yield
        finally:
            marker.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def writer_crashed(root: Path) -> bool:
    """Whether a writer of `root` died mid-write since the last complete version: then every
    file is hashed on load, not only stat-ed."""
    if (root / _CRASHED).exists():
        return True
    try:
        pid = int((root / _WRITING).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def read_manifest(root: Path) -> Manifest:
    """The live version's manifest (read again from the new version if a writer retires this one meanwhile)."""
    for _ in range(_SWITCHES_FOLLOWED):
        version = _require_version(root)
        try:
            return _load_manifest(version)
        except IndexCorrupt:
            if current_version(root) == version:
                raise
    return _load_manifest(_require_version(root))


def read_index(root: Path, check: Check | None = None) -> StoredIndex:
    """Loads the live version. `check`: "stamps" compares each file's size and mtime with the
    manifest (hashing the files whose mtime moved), "full" hashes every file, "none" trusts
    them; by default "stamps", or "full" after a writer crashed.

    A writer may retire the version being read; the read then starts over on the new one."""
    check = check or ("full" if writer_crashed(root) else "stamps")
    for _ in range(_SWITCHES_FOLLOWED):
        version = _require_version(root)
        try:
            return _read_version(root, version, check)
        except IndexCorrupt:
            if current_version(root) == version:
                raise
    return _read_version(root, _require_version(root), check)


def verify_index(root: Path) -> tuple[int, int]:
    """Hashes every file of the live version against its manifest: (files, bytes) checked.

    Raises:
        IndexCorrupt: naming the first file that is missing or damaged.
    """
    version = _require_version(root)
    manifest = _load_manifest(version)
    files = size = 0
    for record in manifest.segments:
        folder = segment_folder(root, record.name)
        _verify(folder, record, "full")
        files += len(record.files)
        size += sum((folder / name).stat().st_size for name in record.files)
    return files, size


def _read_version(root: Path, version: Path, check: Check) -> StoredIndex:
    manifest = _load_manifest(version)
    for record in manifest.segments:
        _verify(segment_folder(root, record.name), record, check)
    try:
        segments = [_read_segment(segment_folder(root, record.name), record) for record in manifest.segments]
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise IndexCorrupt(f"Index at {version} could not be read ({error}); run `cite index` to rebuild.") from None
    index = StoredIndex(version, manifest, segments, LexicalIndex([s.postings for s in segments]))
    if len(index.documents) != len(manifest.documents) or index.lexical.num_docs != index.passage_count:
        raise IndexCorrupt(f"Index at {version} is inconsistent; run `cite index` to rebuild.")
    return index


def _verify(folder: Path, record: SegmentRecord, check: Check) -> None:
    if check == "none":
        return
    for name, expected in record.files.items():
        path = folder / name
        try:
            stat = path.stat()
        except OSError:
            stat = None
        stamp = record.stamps.get(name)
        if stat is not None and check == "stamps" and stamp is not None:
            if stat.st_size == stamp[0] and stat.st_mtime_ns == stamp[1]:
                continue
            if stat.st_size != stamp[0]:
                stat = None  # a file of another size is damaged, whatever its hash
        if stat is None or sha256_of_files([path]) != expected:
            raise IndexCorrupt(
                f"Index file {path} is missing or damaged (checksum mismatch); run `cite index` to rebuild."
            )


def _require_version(root: Path) -> Path:
    version = current_version(root)
    if version is None:
        raise IndexMissing(f"No index at {root}; build one with `cite index PATH --index {root}`.")
    return version


def _load_manifest(version: Path) -> Manifest:
    try:
        data = json.loads((version / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise IndexCorrupt(
            f"Index manifest in {version} is unreadable ({error}); run `cite index` to rebuild."
        ) from None
    if data.get("format_version") != FORMAT_VERSION:
        found = data.get("format_version")
        why = "".join(
            f" (in version {v}, {change})"
            for v, change in FORMAT_CHANGES.items()
            if isinstance(found, int) and found < v
        )
        raise IndexIncompatible(
            f"Index at {version} has format version {found}, this cite reads version {FORMAT_VERSION}{why}; "
            "run `cite index` to rebuild it."
        )
    try:
        return Manifest.from_json(data)
    except (KeyError, TypeError) as error:
        raise IndexCorrupt(f"Index manifest in {version} is malformed ({error}); run `cite index`.") from None
