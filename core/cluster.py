"""Joining a Ray cluster, for the indexer's distributed build and the retriever's shards alike."""

from __future__ import annotations

import socket
from typing import Any

from cite.core.errors import CiteError

PROBE_S = 5.0  # how long a host:port may take to accept a connection


def init_ray(address: str | None, advice: str, **options: Any) -> None:
    """`ray.init` at `address` (None: a Ray started here), its logs kept out of cite's output.

    Raises:
        CiteError: when no cluster answers there; the message ends with `advice`.
    """
    why = unreachable(address)
    if why:
        raise CiteError(f"Cannot reach a Ray cluster at {address} ({why}); {advice}.")
    import ray

    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise CiteError(f"Cannot reach a Ray cluster at {address} ({error}); {advice}.") from None


def unreachable(address: str | None) -> str | None:
    """Why nothing listens at a "host:port" (or "ray://host:port") address; None when something
    does, or when the address is Ray's to resolve (None, "auto", "local"). Asked first because
    `ray.init` keeps retrying a dead address for minutes before it gives up."""
    if not address or address in ("auto", "local"):
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return None  # not host:port: Ray's own error says what is wrong with it
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_S):
            return None
    except OSError as error:
        return f"nothing answers at {host}:{port}: {error.strerror or error}"
