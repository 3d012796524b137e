"""OCR of page images with Debian's tesseract-ocr (the `tesseract` command), as lines with
positions, so scanned pages go through the same layout rules as a text layer."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

from cite.indexer.formats.layout import Line

_TIMEOUT_S = 300


def available() -> bool:
    return shutil.which("tesseract") is not None


def read_image(image, scale: float = 1.0, language: str = "eng") -> list[Line]:
    """The lines tesseract reads in a PIL image rendered at `scale` pixels per point.

    Raises:
        ValueError: tesseract failed on the image.
    """
    with tempfile.TemporaryDirectory(prefix="cite-ocr-") as folder:
        png = Path(folder) / "page.png"
        image.save(png)
        try:
            done = subprocess.run(
                ["tesseract", str(png), "stdout", "-l", language, "tsv"],
                capture_output=True,
                text=True,
                timeout=_TIMEOUT_S,
                check=False,
                # Tesseract's own threads cost more than they give on a busy machine (26 s -> 8 s a
                # page measured on two shared cores); pages are many, so one thread each.
                env={**os.environ, "OMP_THREAD_LIMIT": "1"},
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ValueError(f"OCR failed ({error})") from None
    if done.returncode != 0:
        raise ValueError(f"OCR failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
    return tsv_lines(done.stdout, scale)


def tsv_lines(tsv: str, scale: float = 1.0) -> list[Line]:
    """Tesseract's TSV (one row per word, with block, paragraph and line numbers and a box in
    pixels) -> lines in reading order, positions in points."""
    words: dict[tuple[int, int, int], list[tuple[int, int, int, str]]] = defaultdict(list)
    for row in tsv.splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) < 12 or cells[0] != "5" or not cells[11].strip():
            continue
        block, paragraph, line = int(cells[2]), int(cells[3]), int(cells[4])
        left, top, height = int(cells[6]), int(cells[7]), int(cells[9])
        words[(block, paragraph, line)].append((left, top, height, cells[11].strip()))
    lines = []
    for key in sorted(words):
        row = sorted(words[key])
        bottom = max(top + height for _, top, height, _ in row)
        size = max(height for _, _, height, _ in row)
        lines.append(Line(" ".join(w for *_, w in row), bottom / scale, size / scale))
    return lines
