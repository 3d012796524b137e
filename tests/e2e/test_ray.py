"""Ray: indexing with an actor pool and serving from shard actors, on a 2-node cluster on this
machine, against the one-box build and engine; a killed shard and a killed indexing worker."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from cite.core.config import SplitSettings
from cite.core.errors import CiteError
from cite.core.serialize import answer_json, hits_json
from cite.core.store import current_version, read_index
from cite.core.types import Document
from cite.indexer.build import build_index
from cite.retriever.engine import Engine

from tests.helpers import FakeEmbedder

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

TOPICS = {
    "bees": "Bees make honey from nectar. A colony has one queen. Worker bees gather pollen and guard the hive.",
    "rivers": "The Volga is the longest river in Europe. It flows into the Caspian Sea through a wide delta.",
    "stars": "A star is a ball of plasma held together by gravity. The Sun is the star nearest the Earth.",
    "trees": "Oak trees can live for centuries. Their acorns feed deer, jays and squirrels in the autumn.",
    "ships": "The clipper was a fast sailing ship. Clippers carried tea from China to London in the 1850s.",
    "bread": "Bread is made from flour, water and yeast. The dough rises as the yeast makes carbon dioxide.",
}
QUESTIONS = ["Who makes honey?", "Where does the Volga flow?", "What holds a star together?", "What do acorns feed?"]


def corpus(extra: str = "") -> list[Document]:
    """A dozen documents: each topic twice (another wording), so segments and shards mix topics."""
    docs = []
    for n, (topic, text) in enumerate(sorted(TOPICS.items())):
        docs.append(Document(f"{topic}.txt", text + extra, title=topic.title(), source="corpus"))
        docs.append(Document(f"{topic}-notes.txt", " ".join(reversed(text.split(". "))), source="corpus"))
        docs.append(Document(f"misc-{n}.txt", f"Note {n}: see {topic}. Nothing else here.", source="corpus"))
    return docs


class CrashOnceEmbedder(FakeEmbedder):
    """Kills its worker process in the middle of its first batch (a marker file says it did)."""

    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker = marker

    def encode(self, texts):
        if not self.marker.exists():
            self.marker.write_text("crashed")
            os._exit(1)
        return super().encode(texts)


class AlwaysCrashEmbedder(FakeEmbedder):
    def encode(self, texts):
        os._exit(1)


@pytest.fixture(scope="module")
def cluster():
    """One 2-node cluster (a CPU each, no dashboard) for the whole module, always shut down."""
    from ray.cluster_utils import Cluster

    os.environ["RAY_AUTH_MODE"] = "disabled"
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        nodes.add_node(num_cpus=1)
        ray.init(address=nodes.address, include_dashboard=False, log_to_driver=False)
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()


def ray_settings(**kwargs):
    from cite.indexer.distributed import RaySettings

    return RaySettings(**{"workers": 2, "docs_per_segment": 4, **kwargs})


def stored_rows(root: Path) -> dict[str, tuple]:
    """Passage id -> (passage, vector, sentence spans, sentence vectors), whatever the segments."""
    index = read_index(root)
    vectors = index.vectors(range(index.passage_count))
    return {p.id: (p, vectors[row], *index.sentences_of(row)) for row, p in enumerate(index.passages)}


# Passage vectors are stored int8 in each segment's FAISS scalar quantiser, whose per-dimension
# ranges are trained on that segment's vectors: the same vector in another segment (a Ray batch
# instead of the one local segment) may land one int8 step away (2/255 of a unit vector's range).
INT8_STEP = 2 / 255
SCORE_TOLERANCE = 0.01
BATCH_SCORE_TOLERANCE = 0.08  # between indexes embedded in other batches (see its use)


def assert_same_ranking(got: list[dict], expected: list[dict], tolerance: float = SCORE_TOLERANCE) -> None:
    """Rankings equal within `tolerance`: the fused score at every rank, and every channel's
    score of each passage, within it; so passages may only trade places (or the last places)
    with ones they are tied with to within it."""
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert abs(a["score"] - b["score"]) <= tolerance
    key = lambda hit: (hit["doc"], hit["start"], hit["end"])  # noqa: E731
    mine, theirs = {key(h): h for h in got}, {key(h): h for h in expected}
    for passage in mine.keys() & theirs.keys():
        a, b = mine[passage], theirs[passage]
        assert a["sentence"] == b["sentence"] and a["scores"].keys() == b["scores"].keys()
        assert all(abs(a["scores"][name] - b["scores"][name]) <= tolerance for name in a["scores"])
    for passage in mine.keys() ^ theirs.keys():  # in one top k only: tied with the last place
        hit = mine.get(passage) or theirs[passage]
        assert abs(hit["score"] - expected[-1]["score"]) <= tolerance
    swapped = sum(key(a) != key(b) for a, b in zip(got, expected, strict=True))
    assert swapped <= len(got) // 2, f"{swapped} of {len(got)} ranks differ"


def assert_same_answer(got: dict, expected: dict) -> None:
    """The same answer, citations and claims; the hits ranked alike."""
    assert (got["answer"], got["abstained"], got["citations"]) == (
        expected["answer"],
        expected["abstained"],
        expected["citations"],
    )
    assert [(c["text"], c["citations"], c["supported"]) for c in got["claims"]] == [
        (c["text"], c["citations"], c["supported"]) for c in expected["claims"]
    ]
    assert abs(got["confidence"] - expected["confidence"]) <= SCORE_TOLERANCE
    assert_same_ranking(got["hits"], expected["hits"])


def test_ray_build_equals_the_local_build_and_is_incremental(cluster, tmp_path):
    from cite.indexer.distributed import build_index_on_ray

    local, on_ray = tmp_path / "local", tmp_path / "ray"
    build_index(corpus(), local, FakeEmbedder(), SplitSettings())
    report = build_index_on_ray(corpus(), on_ray, FakeEmbedder(), SplitSettings(), ray_settings())
    assert len(read_index(on_ray).segments) > 2  # batches became segments
    assert report.embedded == len(read_index(local).passages) == report.passages
    a, b = stored_rows(local), stored_rows(on_ray)
    assert a.keys() == b.keys()
    for pid, (passage, vector, spans, sentence_vectors) in a.items():
        assert b[pid][0] == passage
        np.testing.assert_allclose(b[pid][1], vector, rtol=0, atol=INT8_STEP)
        np.testing.assert_array_equal(b[pid][2], spans)
        np.testing.assert_array_equal(b[pid][3], sentence_vectors)
    one_box, sharded_build = Engine(local, FakeEmbedder()), Engine(on_ray, FakeEmbedder())
    for question in QUESTIONS:
        assert_same_ranking(hits_json(sharded_build.search(question, 10)), hits_json(one_box.search(question, 10)))
        assert_same_answer(answer_json(sharded_build.ask(question)), answer_json(one_box.ask(question)))

    # Incremental: one changed document, one new; only they are sent out.
    changed = [*corpus(), Document("new.txt", "Glaciers carve valleys. Ice moves slowly downhill.", source="corpus")]
    changed[0] = Document(changed[0].doc, changed[0].text + " Honey keeps for years.", changed[0].title, "corpus")
    build_index(changed, local, FakeEmbedder(), SplitSettings())
    again = build_index_on_ray(changed, on_ray, FakeEmbedder(), SplitSettings(), ray_settings())
    assert sorted(again.added + again.changed) == ["bees.txt", "new.txt"]
    assert again.embedded == sum(1 for p in read_index(on_ray).passages if p.doc in ("bees.txt", "new.txt"))
    assert stored_rows(local).keys() == stored_rows(on_ray).keys()
    one_box, sharded_build = Engine(local, FakeEmbedder()), Engine(on_ray, FakeEmbedder())
    for question in [*QUESTIONS, "How do glaciers move?"]:
        assert_same_ranking(hits_json(sharded_build.search(question, 10)), hits_json(one_box.search(question, 10)))
    up_to_date = build_index_on_ray(changed, on_ray, FakeEmbedder(), SplitSettings(), ray_settings())
    assert not up_to_date.wrote


@pytest.fixture(scope="module")
def sharded(cluster, tmp_path_factory):
    """An index of three segments (built in three local runs), its one-box engine, and two shard
    actors serving it."""
    from cite.retriever.shard_actors import ShardSet

    root = tmp_path_factory.mktemp("sharded") / "index"
    for end in (6, 12, 18):
        build_index(corpus()[:end], root, FakeEmbedder(), SplitSettings())
    assert len(read_index(root).segments) == 3
    shards = ShardSet.start(root, shards=2)
    try:
        yield root, Engine(root, FakeEmbedder()), shards
    finally:
        shards.stop()


def test_sharded_search_and_ask_equal_the_one_box_engine(sharded):
    from cite.retriever.shards import ShardedEngine

    root, one_box, shards = sharded
    assert shards.shards == 2
    engine = ShardedEngine(root, shards, FakeEmbedder())
    for question in [*QUESTIONS, "bread flour yeast", "Which ship carried tea?"]:
        for k in (1, 5, 20):
            assert hits_json(engine.search(question, k)) == hits_json(one_box.search(question, k))
        assert answer_json(engine.ask(question)) == answer_json(one_box.ask(question))
    snapshot = engine.snapshot()
    hit = engine.search("Volga", 1, snapshot=snapshot)[0]
    assert snapshot.index.documents[hit.passage.doc] == one_box.index.documents[hit.passage.doc]


def test_the_web_server_over_shards_answers_as_the_one_box_engine(sharded):
    """`cite serve --ray`'s app: ui.server.server_app (JSON API + Gradio) over a ShardedBackend."""
    from cite.ui.ray_serve import ShardedBackend
    from cite.ui.server import server_app
    from fastapi.testclient import TestClient

    root, one_box, shards = sharded
    backend = ShardedBackend(root, shards, embedder=FakeEmbedder())
    with TestClient(server_app(root, backend=backend)) as client:
        for question in QUESTIONS[:2]:
            searched = client.post("/api/search", json={"question": question, "k": 5})
            assert searched.status_code == 200
            assert searched.json() == {"hits": hits_json(one_box.search(question, 5))}
            asked = client.post("/api/ask", json={"question": question})
            assert asked.status_code == 200 and asked.json() == answer_json(one_box.ask(question))
        assert client.get("/").status_code == 200  # the Gradio page is mounted beside the API


def test_a_killed_shard_is_restarted_and_a_dead_one_fails_clearly_or_answers_partially(sharded):
    from cite.retriever.shard_actors import ShardUnavailable, ShardWarning, assign_shards
    from cite.retriever.shards import ShardedEngine

    root, one_box, shards = sharded
    engine = ShardedEngine(root, shards, FakeEmbedder())
    partial = ShardedEngine(root, shards, FakeEmbedder(), partial=True)
    expected = hits_json(one_box.search(QUESTIONS[0], 10))
    os.kill(ray.get(shards.actors[1].pid.remote()), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            got = hits_json(engine.search(QUESTIONS[0], 10))
        except ShardUnavailable as error:  # a query caught while it is down fails, and says so
            assert "Shard 2 of 2" in str(error) and "try again" in str(error)
            time.sleep(0.5)
            continue
        assert got == expected  # restarted, reloaded from the folder: the same answers again
        break
    else:
        pytest.fail("the killed shard was not restarted within 60 s")

    # A shard that stays down: a clear error, or (partial=True) the other shard's answer and a warning.
    ray.kill(shards.actors[1], no_restart=True)
    with pytest.raises(ShardUnavailable, match="Shard 2 of 2 .* did not answer"):
        engine.search(QUESTIONS[0], 10)
    with pytest.warns(ShardWarning, match="answered from 1 of 2 shards"):
        hits = partial.search(QUESTIONS[0], 10)
    first, end = assign_shards(read_index(root).manifest.segments, 2)[0]  # what shard 1 holds
    alive = {name for segment in read_index(root).segments[first:end] for name in segment.doc_names}
    assert hits and {h.passage.doc for h in hits} <= alive


def test_a_worker_killed_mid_indexing_loses_nothing(cluster, tmp_path):
    from cite.indexer.distributed import build_index_on_ray

    root = tmp_path / "index"
    build_index(corpus()[:6], root, FakeEmbedder(), SplitSettings())
    before = current_version(root)
    old = hits_json(Engine(root, FakeEmbedder()).search(QUESTIONS[0], 5))

    # Without retries the run fails, and the old index answers as before.
    with pytest.raises(CiteError, match="previous index is untouched"):
        build_index_on_ray(corpus(), root, AlwaysCrashEmbedder(), SplitSettings(), ray_settings(retries=0))
    assert current_version(root) == before
    assert hits_json(Engine(root, FakeEmbedder()).search(QUESTIONS[0], 5)) == old

    # With retries Ray restarts the killed worker and redoes its batch: the run completes.
    report = build_index_on_ray(
        corpus(), root, CrashOnceEmbedder(tmp_path / "crashed"), SplitSettings(), ray_settings()
    )
    assert (tmp_path / "crashed").exists() and report.added
    local = tmp_path / "local"
    build_index(corpus(), local, FakeEmbedder(), SplitSettings())
    assert stored_rows(local).keys() == stored_rows(root).keys()
    segments = {s.record.name for s in read_index(root).segments}
    assert {p.name for p in (root / "segments").iterdir()} == segments  # the failed runs left nothing


def test_cli_index_search_and_ask_on_ray_equal_the_local_ones(cluster, tmp_path, capsys):
    """The real model in the actors (int8): the seeds' passages as locally, rankings within the
    batch tolerance (`assert_same_ranking`), and `search --ray` equal to a local search."""
    import shutil

    from cite.retriever.shard_actors import NAMESPACE
    from cite.ui.cli import main

    from tests.helpers import SEEDS

    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("000_2bd661a9261bf817.txt", "002_8243180751e60087.txt", "004_9fdd055095dae421.txt"):
        shutil.copy(SEEDS / name, folder / name)  # the small seeds: the real model embeds them twice
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert main(["index", str(folder), "--index", str(local)]) == 0
    assert main(["index", str(folder), "--index", str(on_ray), "--ray", cluster.address]) == 0
    assert "3 added" in capsys.readouterr().out
    assert [p.id for p in read_index(local).passages] == [p.id for p in read_index(on_ray).passages]
    a, b = read_index(local), read_index(on_ray)
    rows = range(a.passage_count)
    drift = 1 - float(np.min(np.sum(a.vectors(rows) * b.vectors(rows), axis=1)))
    assert drift < 0.03  # int8 activations are quantised per batch: batch mates move a vector slightly
    question = "Who proposed the creation of a CSO joint command?"
    for command in ("search", "ask"):
        outputs = []
        for root, ray_args in ((local, []), (on_ray, []), (on_ray, ["--ray", cluster.address])):
            assert main([command, question, "--index", str(root), "--json", "--k", "5", *ray_args]) == 0
            outputs.append(json.loads(capsys.readouterr().out))
        # Built on Ray, ranked as built locally, to within what batch mates move a score: a
        # short sentence's cosine moved 0.031 (its batch's padding sets the int8 scale), and
        # min-max fusion stretches that (0.048 seen).
        assert_same_ranking(outputs[1]["hits"], outputs[0]["hits"], tolerance=BATCH_SCORE_TOLERANCE)
        assert outputs[2] == outputs[1]  # sharded serving equals the one-box engine on the same index
    # The CLI stops the shard actors it started when it is done: none is left for this index.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _live_shards(on_ray, NAMESPACE):
        time.sleep(0.5)
    assert not _live_shards(on_ray, NAMESPACE)


def _live_shards(root: Path, namespace: str) -> list[str]:
    live = []
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == namespace and actor["name"].endswith(f":{root.resolve()}"):
            try:
                ray.get_actor(actor["name"], namespace=namespace)
                live.append(actor["name"])
            except ValueError:  # listed a moment longer than it lives
                pass
    return live
