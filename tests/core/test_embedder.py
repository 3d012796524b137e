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
    fresh = OnnxEmbedder(threads=1)  # not yet loaded
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
def test_a_texts_vector_does_not_depend_on_its_batch_order_or_threads(real_embedder):
    """int8 activations take their scale from a model run; each text runs alone, so the same text
    gets the same vector alone, among others, in another order, or on another number of threads."""
    texts = [f"Passage {i}: " + " ".join(f"word{i}{j}" for j in range(5 + 40 * (i % 5))) for i in range(12)]
    together = real_embedder.encode(texts)
    alone = np.vstack([real_embedder.encode([text]) for text in texts])
    reversed_order = real_embedder.encode(texts[::-1])[::-1]
    one_thread = real_embedder.with_threads(1).encode(texts)
    for other in (alone, reversed_order, one_thread):
        assert np.max(np.abs(together - other)) < 1e-5  # float sums only; int8 scales differed by up to 1e-2
