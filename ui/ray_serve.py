"""`cite serve --ray ADDRESS`: the index served by shard actors on a Ray cluster.

The chat UI runs in this process over a `ShardedEngine`; with `--replicas M` a Ray Serve
application of M replicas answers the HTTP API (`POST /search`, `POST /ask` with
`{"question", "k"}`, the same JSON as `cite search/ask --json`) on `serve_port`, every replica
querying the same shard actors. What runs where: shard actors anywhere on the cluster (each
reads its segments from the shared index folder), Serve replicas anywhere, this process
(the UI, and query embedding for it) here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cite.core.embedder import Embedder
from cite.core.errors import CiteError
from cite.eval.report import REPORTS
from cite.retriever.shard_actors import ShardSet, connect
from cite.retriever.shards import ShardedEngine
from cite.ui.backend import Backend

SERVE_PORT = 8000  # Ray Serve's own default


class ShardedBackend(Backend):
    """The UI's backend with its engine over shard actors instead of an index loaded here."""

    def __init__(self, root: Path, shards: ShardSet, reports: Path = REPORTS, embedder: Embedder | None = None) -> None:
        super().__init__(root, embedder, reports=reports)
        self.shards = shards

    def engine(self) -> ShardedEngine:  # type: ignore[override]
        with self._lock:
            if self._engine is None:
                from cite.retriever.generate import chat_model_from_env

                self._engine = ShardedEngine(
                    self.root, self.shards, self.embedder, self.settings, chat_model_from_env()
                )
            return self._engine  # type: ignore[return-value]


class CiteHTTP:
    """A Ray Serve replica: search and ask over the shard actors of one index."""

    def __init__(self, root: str) -> None:
        from cite.retriever.generate import chat_model_from_env

        self.engine = ShardedEngine(Path(root), ShardSet.start(Path(root)), chat_model=chat_model_from_env())

    async def __call__(self, request: Any) -> Any:
        from cite.core.serialize import answer_json, hits_json
        from starlette.responses import JSONResponse

        path = request.url.path.rstrip("/")
        if request.method != "POST" or path not in ("/search", "/ask"):
            return JSONResponse({"error": 'POST /search or /ask with {"question": ..., "k": 10}'}, 404)
        try:
            body = await request.json()
            question, k = str(body["question"]), int(body.get("k", 10))
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": 'the body must be JSON {"question": ..., "k": 10}'}, 400)
        try:
            if path == "/search":
                return JSONResponse({"hits": hits_json(self.engine.search(question, k))})
            return JSONResponse(answer_json(self.engine.ask(question, k)))
        except CiteError as error:
            return JSONResponse({"error": str(error)}, 503 if "Shard" in str(error) else 400)


def start_replicas(root: Path, replicas: int, host: str = "127.0.0.1", port: int = SERVE_PORT) -> None:
    """Runs `replicas` CiteHTTP replicas under Ray Serve, HTTP on host:port (Ray connected)."""
    from ray import serve

    serve.start(http_options={"host": host, "port": port})
    app = serve.deployment(CiteHTTP, name="cite", num_replicas=replicas).bind(str(Path(root).resolve()))
    serve.run(app, name="cite", route_prefix="/", blocking=False)


def serving_on(address: str, shards: int = 2, replicas: int = 0) -> Callable[..., None]:
    """`ui.server.serve`'s signature, served from shard actors on the Ray cluster at `address`."""
    return functools.partial(serve_on_ray, address=address, shards=shards, replicas=replicas)


def serve_on_ray(
    root: Path,
    *,
    address: str,
    shards: int = 2,
    replicas: int = 0,
    host: str = "127.0.0.1",
    port: int = 7860,
    password: str | None = None,
    reports: Path = REPORTS,
    serve_port: int = SERVE_PORT,
    trust_proxy: bool = False,
) -> None:
    """Starts (or finds) `shards` shard actors for `root` on the cluster at `address`, Serve
    replicas for the HTTP API when `replicas` > 0, and the UI and JSON API here (as `ui.server.serve`
    runs them, behind `password` as user `cite` when one is given), until interrupted."""
    import ray
    import uvicorn
    from cite.ui.guard import Door, is_loopback
    from cite.ui.server import server_app, uvicorn_options

    if shards < 1 or replicas < 0:
        raise CiteError(f"--shards must be at least 1 and --replicas at least 0 (got {shards}, {replicas}).")
    connect(address)
    root = Path(root).resolve()
    shard_set = ShardSet.start(root, shards)
    if replicas:
        start_replicas(root, replicas, host, serve_port)
        print(f"cite: HTTP API on http://{host}:{serve_port}/search and /ask ({replicas} Ray Serve replicas)")
    fewer = f" (shards hold whole segments, and the index has {shard_set.shards})" if shard_set.shards < shards else ""
    print(f"cite: {shard_set.shards} shard actor(s) serve {root}{fewer}; the UI runs here")
    try:
        door = Door(password, local_only=is_loopback(host), trust_proxy=trust_proxy)
        app = server_app(root, door, reports, backend=ShardedBackend(root, shard_set, reports))
        print(f"cite: serving http://{host}:{port}/ (JSON API under /api, its schema at /openapi.json)", flush=True)
        uvicorn.run(app, **uvicorn_options(host, port, trust_proxy))
    finally:  # the shards and replicas live as long as the UI that started them
        if replicas:
            from ray import serve

            serve.shutdown()
        shard_set.stop()
        ray.shutdown()
