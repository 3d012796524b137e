"""Bad input, crashes and concurrent use lose nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from cite.core.config import SplitSettings
from cite.core.errors import BadQuestion, IndexBusy
from cite.core.store import current_version, read_index, read_manifest, writer_lock
from cite.indexer.build import build_index
from cite.indexer.loaders import load_paths
from cite.retriever.engine import Engine
from cite.retriever.search import MAX_QUESTION_CHARS, check_question
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import ROOT, SEEDS, FakeEmbedder


def _cite(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "cite.ui.cli", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@given(st.text(max_size=3000))
def test_property_questions_are_cleaned_or_refused(question):
    try:
        cleaned = check_question(question)
    except BadQuestion:
        assert not "".join(ch for ch in question if ch.isprintable()).strip()
        return
    assert cleaned and cleaned == cleaned.strip()
    assert len(cleaned) <= MAX_QUESTION_CHARS
    assert all(ch.isprintable() for ch in cleaned)


def test_oversized_and_vanishing_files_are_skipped_with_reasons(tmp_path, monkeypatch):
    (tmp_path / "big.txt").write_text("word " * 1000, encoding="utf-8")
    (tmp_path / "gone.txt").write_text("here a moment ago", encoding="utf-8")
    (tmp_path / "fine.txt").write_text("Fine text.", encoding="utf-8")
    real_read = type(tmp_path).read_bytes

    def vanish(path):
        if path.name == "gone.txt":
            raise FileNotFoundError(2, "No such file or directory")
        return real_read(path)

    monkeypatch.setattr(type(tmp_path), "read_bytes", vanish)
    loaded = load_paths([tmp_path], max_bytes=1024)
    assert [d.doc for d in loaded.documents] == ["fine.txt"]
    reasons = {s.path: s.reason for s in loaded.skipped}
    assert "limit" in reasons["big.txt"] and "No such file" in reasons["gone.txt"]


def test_queries_keep_answering_while_a_new_version_is_written(corpus, tmp_path):
    embedder = FakeEmbedder()
    root = tmp_path / "index"
    build_index(load_paths([corpus]).documents, root, embedder, SplitSettings())
    engine = Engine(root, embedder)
    first = current_version(root)
    for i in range(30):
        (corpus / f"extra{i}.txt").write_text(f"Extra document {i} about owls and rivers. " * 20, encoding="utf-8")
    errors: list[Exception] = []
    done = threading.Event()

    def keep_asking():
        while not done.is_set():
            try:
                assert engine.search("longest river in Europe", 3)
            except Exception as error:  # noqa: BLE001 (any failure is the finding)
                errors.append(error)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    build_index(load_paths([corpus]).documents, root, embedder, SplitSettings())
    done.set()
    asker.join()
    assert errors == []
    assert current_version(root) != first
    engine.search("owls", 3)
    assert len(engine.index.documents) == 32  # switched to the new version without a restart


@pytest.mark.slow
def test_second_index_run_is_refused_with_a_clear_message(seed_index, tmp_path):
    with writer_lock(seed_index):
        result = _cite("index", SEEDS, "--index", seed_index)
        _, stderr = result.communicate(timeout=120)
    assert result.returncode == 1
    assert "Another `cite index` is writing" in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_tampered_index_is_a_clear_cli_error(seed_index, tmp_path):
    import shutil

    root = tmp_path / "index"
    shutil.copytree(seed_index, root)
    vectors = root / "segments" / read_manifest(root).segments[0].name / "dense.faiss"
    vectors.write_bytes(vectors.read_bytes()[:-100])  # truncated
    result = _cite("search", "Gazprom", "--index", root)
    _, stderr = result.communicate(timeout=120)
    assert result.returncode == 1
    assert "damaged" in stderr and "cite index" in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_sigkill_during_real_indexing_never_breaks_the_index(seeds_copy, tmp_path):
    """Kills `cite index` at random moments of a real build; the old index must always load
    and answer, and a final run must complete."""
    root = tmp_path / "index"
    assert _cite("index", seeds_copy, "--index", root).wait(timeout=300) == 0
    before = sorted(read_index(root).documents)
    text = (SEEDS / "001_f6a76877249cae30.txt").read_text(encoding="utf-8")
    for i in range(12):  # enough new text that a build takes several seconds
        (seeds_copy / f"copy{i}.txt").write_text(f"Copy {i}.\n\n{text[i * 1000 :]}", encoding="utf-8")
    rng = random.Random(11)
    survived = 0
    for _ in range(5):
        process = _cite("index", seeds_copy, "--index", root, start_new_session=True)
        time.sleep(rng.uniform(0.5, 6.0))
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        index = read_index(root)  # verifies every checksum
        assert sorted(index.documents) in (before, sorted(before + [f"copy{i}.txt" for i in range(12)]))
        hits = Engine(root).search("Who argued for a liberal empire?", 3)
        assert hits and all(h.passage.doc in index.documents for h in hits)
        survived += 1
    finished = _cite("index", seeds_copy, "--index", root)
    assert finished.wait(timeout=600) == 0, finished.stderr.read()
    assert len(read_index(root).documents) == 17
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-")]
    assert survived == 5


def test_writer_lock_is_released_after_a_crash_of_its_holder(tmp_path):
    root = tmp_path / "index"
    code = (
        "import os; from pathlib import Path; from core.store import writer_lock\n"
        f"with writer_lock(Path({str(root)!r})): os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60)
    with writer_lock(root):  # the kernel dropped the dead holder's lock
        pass
    with pytest.raises(IndexBusy):
        with writer_lock(root), writer_lock(root):
            pass


@pytest.mark.slow
def test_server_under_concurrent_load_answers_everything(seed_index, tmp_path):
    from bench.load import main as load

    result = load(["--users", "6", "--seconds", "10", "--index", str(seed_index), "--out", str(tmp_path / "load.json")])
    assert result["errors"] == 0, result["error_samples"]
    assert result["requests"] >= 10
    assert result["responsive_after_ms"] is not None
