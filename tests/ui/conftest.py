"""What the UI tests share: a Backend over the tiny corpus, with the fake embedder."""

from __future__ import annotations

import pytest

from core.config import SplitSettings
from indexer.build import build_index
from indexer.loaders import load_paths
from ui.backend import Backend

CASPIAN = "Which river flows into the Caspian Sea?"


@pytest.fixture
def backend(corpus, tmp_path, fake_embedder) -> Backend:
    root = tmp_path / "index"
    build_index(load_paths([corpus]).documents, root, fake_embedder, SplitSettings())
    return Backend(root, fake_embedder, reports=tmp_path / "reports")
