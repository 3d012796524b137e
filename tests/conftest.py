"""Shared fixtures: a deterministic fake embedder for plumbing, the real one for behaviour."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

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


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def real_embedder():
    from cite.core.embedder import default_embedder

    return default_embedder()


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory, real_embedder) -> Path:
    """The seeds indexed once with the real model, for every real-model test."""
    from cite.core.config import SplitSettings
    from cite.indexer.build import build_index
    from cite.indexer.loaders import load_paths

    root = tmp_path_factory.mktemp("seed-index") / "index"
    build_index(load_paths([SEEDS]).documents, root, real_embedder, SplitSettings())
    return root


@pytest.fixture(scope="session")
def seed_engine(seed_index, real_embedder):
    from cite.retriever.engine import Engine

    return Engine(seed_index, real_embedder)


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A tiny folder of documents, including a PDF-style hard-wrapped one."""
    return write_tiny_corpus(tmp_path / "docs")


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


@pytest.fixture
def seeds_copy(tmp_path) -> Path:
    folder = tmp_path / "seeds"
    shutil.copytree(SEEDS, folder)
    return folder
