"""Zip packages (DOCX, PPTX, ODT, EPUB) read within `ReadLimits`: each member inflated in chunks
and counted as it inflates, so a zip bomb is refused having held one chunk, whatever sizes its
headers declare."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator

from cite.indexer.formats.limits import LimitExceeded, ReadLimits, size_text

_CHUNK = 1024 * 1024


class Archive:
    """A zip package and the bytes inflated from it so far, against `member_bytes` per member
    and `archive_bytes` for the whole package."""

    def __init__(self, package: zipfile.ZipFile, limits: ReadLimits) -> None:
        self.package = package
        self.limits = limits
        self.inflated = 0

    def read(self, name: str) -> bytes:
        """A member's bytes.

        Raises:
            KeyError: no such member.
            LimitExceeded: it inflates past a limit (read no further than that).
            zipfile.BadZipFile: its data is damaged.
        """
        return b"".join(self._chunks(name))

    def check_all(self) -> None:
        """Inflates every member, keeping nothing, so that a library which reads members
        whole (python-docx, python-pptx) is only handed a package known to fit.

        Raises:
            LimitExceeded: a member, or all of them together, inflates past a limit.
            zipfile.BadZipFile: a member's data is damaged.
        """
        for info in self.package.infolist():
            if not info.is_dir():
                for _ in self._chunks(info):  # by entry: a name may be in the package twice
                    pass

    def _chunks(self, member: str | zipfile.ZipInfo) -> Iterator[bytes]:
        name = member.filename if isinstance(member, zipfile.ZipInfo) else member
        size = 0
        try:
            with self.package.open(member) as stream:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    self.inflated += len(chunk)
                    if size > self.limits.member_bytes:
                        raise LimitExceeded(
                            f"{name} inflates past the {size_text(self.limits.member_bytes)} limit on an archive member"
                        )
                    if self.inflated > self.limits.archive_bytes:
                        raise LimitExceeded(
                            f"its members inflate past the {size_text(self.limits.archive_bytes)} limit on an archive"
                        )
                    yield chunk
        except (zlib.error, EOFError, RuntimeError, NotImplementedError) as error:
            # Damaged data, an encrypted member, an unknown compression method: one kind of refusal.
            raise zipfile.BadZipFile(f"{name}: {error}") from None
