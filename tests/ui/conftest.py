"""What the UI tests share: a Backend over the tiny corpus, with the fake embedder. What they
import by name (CASPIAN, tiny_backend, live_server) lives in tests/ui/helpers.py."""

from __future__ import annotations

import pytest
from cite.core.config import SplitSettings
from cite.indexer.build import build_index
from cite.indexer.loaders import load_paths
from cite.ui.backend import Backend


@pytest.fixture
def backend(corpus, tmp_path, fake_embedder) -> Backend:
    root = tmp_path / "index"
    build_index(load_paths([corpus]).documents, root, fake_embedder, SplitSettings())
    return Backend(root, fake_embedder, reports=tmp_path / "reports")
