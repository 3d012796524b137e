"""JSON Lines, read one way everywhere: numbered records, blank lines skipped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line of `path`.

    Raises:
        OSError: when the file cannot be read.
        ValueError: when a line is not JSON; the message names the line.
    """
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError:
                raise ValueError(f"{path}:{number} is not valid JSON") from None
