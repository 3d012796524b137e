import pickle
import threading

import numpy as np
import onnxruntime
import pytest

from core.embedder import OnnxEmbedder


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


def test_a_pickled_or_copied_embedder_loads_its_own_session():
    embedder = OnnxEmbedder()
    copy = pickle.loads(pickle.dumps(embedder.with_threads(2)))
    assert copy.fingerprint == embedder.fingerprint and copy._threads == 2
    assert copy._session is None and copy._loading is not embedder._loading


def test_the_default_embedder_is_made_once_per_process():
    from core.embedder import default_embedder

    assert default_embedder() is default_embedder()
