"""Joining a Ray cluster, for the indexer's distributed build and the retriever's shards alike."""

from __future__ import annotations

from typing import Any

from core.errors import CiteError


def init_ray(address: str | None, advice: str, **options: Any) -> None:
    """`ray.init` at `address` (None: a Ray started here), its logs kept out of cite's output.

    Raises:
        CiteError: when no cluster answers there; the message ends with `advice`.
    """
    import ray

    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise CiteError(f"Cannot reach a Ray cluster at {address} ({error}); {advice}.") from None
