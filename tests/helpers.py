"""What tests import by name: the repository's folders, the fake embedder and the tiny corpus
(fixtures stay in conftest.py, which pytest loads itself and tests do not import)."""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"


class FakeEmbedder:
    """Bag of hashed words: same text, same vector; shared words, closer vectors."""

    name = "fake-hash-embedder"
    fingerprint = "fake-v1"
    dim = 64

    def __init__(self) -> None:
        self.calls: list[int] = []  # how many texts each encode() call embedded

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out


def write_tiny_corpus(folder: Path) -> Path:
    """The `corpus` fixture's two documents, written into `folder` (for module-scoped fixtures)."""
    folder.mkdir()
    (folder / "bees.txt").write_text(
        "Bees make honey from nectar. A colony has one queen.\n\nWorker bees are female. "
        "They gather pollen and guard the hive.",
        encoding="utf-8",
    )
    (folder / "rivers.md").write_text(
        "# Rivers\n\nThe Volga is the longest river in Europe. It flows into the Cas-\npian Sea.\n",
        encoding="utf-8",
    )
    return folder


def write_epub(path: Path, manifest: str, spine: str, files: dict[str, str], title: str = "A Short Book") -> Path:
    """An EPUB 3 package per the spec: mimetype first and stored, container.xml, an OPF package
    with `manifest` items and `spine` itemrefs, and `files` (names under OEBPS/) as given."""
    opf = f"""<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
 <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">urn:test:1</dc:identifier>
  <dc:title>{title}</dc:title><dc:language>en</dc:language></metadata>
 <manifest>{manifest}</manifest><spine>{spine}</spine></package>"""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        book.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
            '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        book.writestr("OEBPS/content.opf", opf)
        for name, text in files.items():
            book.writestr(f"OEBPS/{name}", text)
    return path
