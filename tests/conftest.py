"""Shared fixtures: a deterministic fake embedder for plumbing, the real one for behaviour.
What tests import by name (ROOT, SEEDS, FakeEmbedder, ...) lives in tests/helpers.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import SEEDS, FakeEmbedder, write_tiny_corpus

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


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


@pytest.fixture
def seeds_copy(tmp_path) -> Path:
    folder = tmp_path / "seeds"
    shutil.copytree(SEEDS, folder)
    return folder
