"""`cite serve`: the chat UI at /, the JSON API at /api, OpenAI-compatible chat at /v1 and MCP at
/mcp, one app behind `ui.guard`, run by uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cite.core.errors import IndexMissing
from cite.eval.report import REPORTS
from cite.ui.backend import Backend
from cite.ui.guard import Door, Guard, is_loopback


def serve(
    root: Path,
    host: str = "127.0.0.1",
    port: int = 7860,
    password: str | None = None,
    reports: Path = REPORTS,
    trust_proxy: bool = False,
    watch: bool = False,
    poll: bool = False,
) -> None:
    """Serves the UI at / and the JSON API at /api over the index at `root` (both behind
    `password`, as user `cite`, when one is given); the Eval tab writes its reports to `reports`.

    Args:
        trust_proxy: behind a reverse proxy: the client's address from X-Forwarded-For (the
            failed-login limit counts by it) and its host from X-Forwarded-Host. Off, those
            headers are ignored, so a client cannot pose as many to guess more passwords.
    """
    import uvicorn

    print(f"cite: serving http://{host}:{port}/ (JSON API under /api, its schema at /openapi.json)", flush=True)
    door = Door(password, local_only=is_loopback(host), trust_proxy=trust_proxy)
    backend = Backend(root, reports=reports)
    if watch:
        watching = backend.watch(poll)
        print(f"cite: {watching.state().describe() if watching else 'no folders to watch (uploads only)'}", flush=True)
    uvicorn.run(server_app(root, door, reports, backend), **uvicorn_options(host, port, trust_proxy))


def uvicorn_options(host: str, port: int, trust_proxy: bool) -> dict[str, Any]:
    """uvicorn's settings for `serve`: forwarded-for headers read only when the user trusts a proxy."""
    return {"host": host, "port": port, "log_level": "warning", "proxy_headers": trust_proxy}


def server_app(
    root: Path, door: Door | str | None = None, reports: Path = REPORTS, backend: Backend | None = None
) -> Any:
    """The ASGI app `serve` runs: the JSON API with the Gradio UI mounted beside it, behind `ui.guard`.

    Args:
        door: who may come in; a string is a password (any host, no proxy).
    """
    from cite.ui.api import create_api, mount_ui
    from cite.ui.mcp_server import mount_mcp
    from cite.ui.web import CSS, build_app

    door = door if isinstance(door, Door) else Door(door)
    backend = backend or Backend(root, reports=reports)
    try:
        backend.engine()  # load models before the first visitor, and fail loudly on a broken index
    except IndexMissing:
        pass  # the page says how to add documents
    blocks = build_app(backend)
    blocks.queue(default_concurrency_limit=4)
    api = create_api(backend)
    mount_mcp(api, backend)  # /mcp: search, ask and read for MCP clients, behind the same guard
    app = mount_ui(api, blocks, door.password, CSS, allowed_paths=[str(backend.reports)])
    return Guard(app, door)

