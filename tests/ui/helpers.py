"""What the UI tests import by name: a question the tiny corpus answers, a Backend over that
corpus for module-scoped fixtures, and a live uvicorn server on a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cite.core.config import SplitSettings
from cite.indexer.build import build_index
from cite.indexer.loaders import load_paths
from cite.ui.backend import Backend

from tests.helpers import FakeEmbedder, write_tiny_corpus

CASPIAN = "Which river flows into the Caspian Sea?"


def tiny_backend(folder: Path) -> Backend:
    """A Backend over the tiny corpus written into `folder`, with the fake embedder (for
    module-scoped fixtures, which cannot use the function-scoped `backend`)."""
    embedder = FakeEmbedder()
    build_index(load_paths([write_tiny_corpus(folder / "docs")]).documents, folder / "index", embedder, SplitSettings())
    return Backend(folder / "index", embedder, reports=folder / "reports")


@contextmanager
def live_server(app: Any, **options: Any) -> Iterator[str]:
    """`app` served by uvicorn on a thread, on a free 127.0.0.1 port bound here (no race for
    it); yields its base URL once it answers, and stops it afterwards."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    options = {**options, "host": "127.0.0.1", "port": sock.getsockname()[1]}
    server = uvicorn.Server(uvicorn.Config(app, **{"log_level": "warning", **options}))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{options['port']}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
