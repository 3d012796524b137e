import pickle
import threading

import numpy as np
import onnxruntime
import pytest
from cite.core.embedder import MiniLMEmbedder, OnnxEmbedder


@pytest.mark.slow
def test_many_first_questions_at_once_load_one_session(real_embedder, monkeypatch):
    created = []
    real_session = onnxruntime.InferenceSession

    def counted(*args, **kwargs):
        created.append(1)
        return real_session(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", counted)
    fresh = real_embedder.with_threads(1)
    start = threading.Barrier(8)
    vectors = []

    def ask() -> None:
        start.wait()
        vectors.append(fresh.encode(["Who publishes the Monitor?"]))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(created) == 1 and len(vectors) == 8
    assert all(np.array_equal(v, vectors[0]) for v in vectors)


def test_the_torch_embedder_also_loads_its_model_once(monkeypatch):
    class Model:
        def encode(self, texts, **_):
            return np.ones((len(texts), 384), dtype=np.float32)

    loads = []

    def slow_load(self):
        loads.append(1)
        threading.Event().wait(0.05)  # long enough for every thread to find no model yet
        self._model = Model()

    monkeypatch.setattr(MiniLMEmbedder, "_load", slow_load)
    embedder = MiniLMEmbedder()
    start = threading.Barrier(8)
    threads = [threading.Thread(target=lambda: (start.wait(), embedder.encode(["a question"]))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1
    copy = pickle.loads(pickle.dumps(embedder))
    assert copy._model is None and copy.fingerprint == embedder.fingerprint


def test_a_pickled_or_copied_embedder_loads_its_own_session():
    embedder = OnnxEmbedder()
    copy = pickle.loads(pickle.dumps(embedder.with_threads(2)))
    assert copy.fingerprint == embedder.fingerprint and copy._threads == 2
    assert copy._session is None and copy._loading is not embedder._loading


def test_the_default_embedder_is_made_once_per_process():
    from cite.core.embedder import default_embedder

    assert default_embedder() is default_embedder()


@pytest.mark.slow
def test_uploads_are_embedded_in_runs_of_bounded_tokens(real_embedder, monkeypatch):
    """A server embeds uploads in model runs of at most UPLOAD_BATCH_TOKENS tokens (its memory
    grew ~280 MB on one run of 16 long passages); sentences keep their whole batches."""
    from cite.core.embedder import UPLOAD_BATCH_TOKENS, for_uploads

    bounded = for_uploads(real_embedder)
    assert bounded is not real_embedder and real_embedder.batch_tokens is None
    runs: list[tuple[int, int]] = []
    run = OnnxEmbedder._run
    monkeypatch.setattr(OnnxEmbedder, "_run", lambda self, ids, mask: runs.append(ids.shape) or run(self, ids, mask))
    sentences = [f"Sentence number {i} is short." for i in range(16)]
    passages = [" ".join(f"word{i}{j}" for j in range(300)) for i in range(16)]
    assert np.array_equal(bounded.encode(sentences), real_embedder.encode(sentences))
    runs.clear()
    vectors = bounded.encode(passages)
    assert runs and all(texts * tokens <= UPLOAD_BATCH_TOKENS for texts, tokens in runs)
    whole = real_embedder.encode(passages)
    assert np.min(np.sum(vectors * whole, axis=1)) > 0.98  # int8 scales per run: close, not equal
