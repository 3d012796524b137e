"""Uploads embedded and written in a worker process (indexer.isolated.build_isolated): the
server's memory is not what a document costs to embed, and a failure there is a clear refusal."""

from __future__ import annotations

import numpy as np
import pytest
from cite.core.config import SplitSettings
from cite.core.errors import CiteError, IndexBusy
from cite.core.store import current_version, writer_lock
from cite.core.types import Document
from cite.indexer.build import build_index
from cite.indexer.isolated import build_isolated

from tests.helpers import FakeEmbedder

LAKE = Document("uploads/lake.txt", "Lake Baikal is the deepest lake. It lies in Siberia.", "")


class GreedyEmbedder(FakeEmbedder):
    """Asks for 4 GB while it embeds a document (as a huge one would)."""

    def encode(self, texts):
        if any("Baikal" in text for text in texts):
            np.ones(1 << 29)  # 4 GiB of float64
        return super().encode(texts)


@pytest.fixture
def root(tmp_path, fake_embedder):
    root = tmp_path / "index"
    build_index([Document("bees.txt", "Bees make honey from nectar.", "")], root, fake_embedder, SplitSettings())
    return root


def test_a_build_in_a_worker_writes_the_index_and_reports_progress(root, fake_embedder):
    heard: list[tuple[int, int]] = []
    fake_embedder.calls.clear()  # the fixture's own build
    report = build_isolated([LAKE], root, fake_embedder, SplitSettings(), lambda *p: heard.append(p), scope=set())
    assert report.added == ["uploads/lake.txt"] and heard and heard[-1][0] == heard[-1][1]
    assert fake_embedder.calls == []  # embedded there, not here


def test_a_worker_out_of_memory_is_a_refusal_and_the_index_stays(root):
    before = current_version(root)
    with pytest.raises(CiteError, match="indexing took more than the 1 GB memory limit"):
        build_isolated([LAKE], root, GreedyEmbedder(), SplitSettings(), scope=set(), memory_bytes=1 << 30)
    assert current_version(root) == before


def test_the_workers_index_errors_are_raised_here_as_themselves(root, fake_embedder):
    with writer_lock(root), pytest.raises(IndexBusy):
        build_isolated([LAKE], root, fake_embedder, SplitSettings(), scope=set())
