"""The `cite` command as a user runs it: real processes, real model, real files (slow). Its
--batch plumbing is in test_cli_batch.py."""

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT


def cite(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "cite.ui.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.mark.slow
def test_index_is_incremental_and_says_what_changed(seeds_copy, tmp_path):
    index = tmp_path / "index"
    first = cite("index", seeds_copy, "--index", index)
    assert first.returncode == 0, first.stderr
    assert "5 added" in first.stdout
    assert "cite: skipped" not in first.stderr  # questions.jsonl is data, not a document

    (seeds_copy / "notes.md").write_text("The Volga flows into the Caspian Sea.", encoding="utf-8")
    (seeds_copy / "004_9fdd055095dae421.txt").unlink()
    second = cite("index", seeds_copy, "--index", index)
    assert second.returncode == 0, second.stderr
    assert "1 added, 0 changed, 1 removed, 4 unchanged" in second.stdout
    assert "removed: 004_9fdd055095dae421.txt" in second.stdout

    third = cite("search", "Which river flows into the Caspian Sea?", "--index", index, "--json", "--k", "3")
    hit = json.loads(third.stdout)["hits"][0]
    assert hit["doc"] == "notes.md" and hit["rank"] == 1
    assert set(hit) == {"rank", "doc", "start", "end", "page", "section", "text", "score", "scores", "sentence"}
    assert {"dense", "bm25", "sentence", "fused"} <= set(hit["scores"])
    assert hit["start"] <= hit["sentence"]["start"] < hit["sentence"]["end"] <= hit["end"]


@pytest.mark.slow
def test_ask_json_contract(seed_index):
    result = cite("ask", "Who proposed the creation of a CSO joint command?", "--index", seed_index, "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert {"answer", "abstained", "citations", "hits", "claims", "confidence"} <= set(answer)
    assert not answer["abstained"] and "Sergei Ivanov" in answer["answer"]
    for citation in answer["citations"]:
        original = (ROOT / "seeds" / citation["doc"]).read_text(encoding="utf-8")
        assert original[citation["start"] : citation["end"]] == citation["quote"]
        assert f"[{citation['n']}]" in answer["answer"]


@pytest.mark.slow
def test_batch_search_and_ask_keep_ids_and_order(seed_index, tmp_path):
    batch = tmp_path / "questions.jsonl"
    batch.write_text(
        json.dumps({"id": "a", "question": "Who publishes the Monitor?", "extra": 1})
        + "\n"
        + json.dumps({"id": 7, "question": "What is the capital of Mongolia?"})
        + "\n",
        encoding="utf-8",
    )
    searched = cite("search", "--batch", batch, "--index", seed_index, "--k", "2")
    lines = [json.loads(line) for line in searched.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["a", 7] and len(lines[0]["hits"]) == 2
    asked = cite("ask", "--batch", batch, "--index", seed_index)
    answers = [json.loads(line) for line in asked.stdout.splitlines()]
    assert [a["id"] for a in answers] == ["a", 7]
    assert "Jamestown Foundation" in answers[0]["answer"]
    assert answers[1]["abstained"] is True and answers[1]["answer"] is None


@pytest.mark.slow
def test_text_output_for_abstention_is_plain(seed_index):
    result = cite("ask", "How do I bake sourdough bread?", "--index", seed_index)
    assert result.returncode == 0
    assert "The documents don't answer this" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["ask", "   "], "The question is empty"),
        (["search"], "Give a QUESTION or --batch"),
        (["ask", "anything", "--index", "/nonexistent/index"], "No index at /nonexistent/index"),
    ],
)
def test_bad_input_is_one_clear_line_and_nonzero_exit(args, message):
    result = cite(*args)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("cite: error:") and message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_binary_file_is_refused_and_nothing_is_lost(tmp_path, seed_index):
    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"\x00\x01binary")
    result = cite("index", junk, "--index", tmp_path / "index")
    assert result.returncode == 1
    assert "junk.txt: looks binary" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_serve_stays_on_loopback_unless_exposed():
    result = cite("serve", "--host", "0.0.0.0", "--index", "/nonexistent")
    assert result.returncode == 1
    assert "--expose" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc arenas")
def test_a_server_process_keeps_its_threads_to_two_malloc_arenas():
    """Eight threads alive at once, each allocating, make eight arenas (then nine with the main
    one) unless `cite serve`'s limit is set first; malloc_stats prints one "Arena" per arena."""
    program = (
        "import ctypes, sys, threading\n"
        "from cite.ui.commands import limit_malloc_arenas\n"
        "if sys.argv[1] == 'limit': limit_malloc_arenas()\n"
        "held, together = [], threading.Barrier(8)\n"
        "def allocate(): held.append(bytearray(100_000)); together.wait()\n"
        "threads = [threading.Thread(target=allocate) for _ in range(8)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "ctypes.CDLL(None).malloc_stats()\n"
    )

    def arenas(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", program, mode], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return sum(line.startswith("Arena ") for line in done.stderr.splitlines())

    assert arenas("limit") == 2 and arenas("none") > 2


@pytest.mark.slow
def test_eval_calibrate_fits_abstention_on_answerable_and_unanswerable_questions(seed_index, tmp_path):
    from cite.eval.datasets import SEED_QUESTIONS, load_questions

    result = cite("eval", "--index", seed_index, "--report-dir", tmp_path, "--calibrate")
    assert result.returncode == 0, result.stderr
    questions = load_questions(SEED_QUESTIONS)
    answerable = sum(q.answerable for q in questions)
    assert f"{answerable} answerable, {len(questions) - answerable} unanswerable questions" in result.stdout
    assert "confidence_weights = (" in result.stdout and "min_confidence = " in result.stdout
    assert "leave-one-out: answered" in result.stdout and (tmp_path / "seeds.md").exists()


@pytest.mark.slow
def test_eval_calibrate_pools_the_split_of_several_question_files_each_over_its_index(seed_index, tmp_path):
    from cite.eval.datasets import SEED_QUESTIONS, load_questions

    train = [q for q in load_questions(SEED_QUESTIONS) if q.split == "train"]
    answerable = sum(q.answerable for q in train)
    also = ("--calibrate-also", SEED_QUESTIONS, seed_index)
    result = cite("eval", "--index", seed_index, "--report-dir", tmp_path, "--split", "train", "--calibrate", *also)
    assert result.returncode == 0, result.stderr
    # The seed questions twice over the seed index: every train question counted twice.
    assert f"{2 * answerable} answerable, {2 * (len(train) - answerable)} unanswerable questions" in result.stdout


@pytest.mark.slow
def test_eval_calibrate_also_is_refused_without_calibrate_or_without_an_index(tmp_path):
    from cite.eval.datasets import SEED_QUESTIONS

    for args, message in (
        (["--calibrate-also", SEED_QUESTIONS, tmp_path], "add --calibrate"),
        (["--calibrate", "--calibrate-also", SEED_QUESTIONS, tmp_path / "none"], "no index at"),
    ):
        result = cite("eval", *args, "--index", tmp_path / "idx", "--report-dir", tmp_path)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "idx").exists()


@pytest.mark.slow
def test_eval_calibrate_refuses_questions_it_cannot_fit_before_any_work(tmp_path):
    one_kind = tmp_path / "answerable.jsonl"
    one_kind.write_text('{"id": "a", "question": "Who?", "doc": "d.txt", "evidence": "someone"}\n', encoding="utf-8")
    for args, message in (
        (["--questions", one_kind], "these are all one kind"),
        (["--beir", tmp_path], "--calibrate needs answerable and unanswerable questions"),
    ):
        result = cite("eval", *args, "--index", tmp_path / "none", "--report-dir", tmp_path, "--calibrate")
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "none").exists()


@pytest.mark.slow
def test_index_waits_for_another_writer_when_asked(corpus, tmp_path):
    """--wait: `cite index` waits out another program's writer (e.g. `cite serve` indexing an upload)."""
    import threading
    import time

    from cite.core.store import writer_lock

    index = tmp_path / "index"
    index.mkdir()
    with writer_lock(index):
        refused = cite("index", corpus, "--index", index)  # no --wait: refused at once, as before
    assert refused.returncode == 1 and "cite index" in refused.stderr
    held = threading.Event()

    def hold() -> None:
        with writer_lock(index):
            held.set()
            time.sleep(3)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    waited = cite("index", corpus, "--index", index, "--wait", "60")
    holder.join()
    assert waited.returncode == 0 and "2 added" in waited.stdout, waited.stderr


@pytest.mark.slow
def test_index_watch_keeps_indexing_the_folder_until_interrupted(corpus, tmp_path):
    """`cite index FOLDER --watch`: indexes, then each change, in the foreground until Ctrl-C."""
    import signal
    import threading
    import time

    from cite.core.store import current_version, read_manifest

    index = tmp_path / "index"
    process = subprocess.Popen(
        [sys.executable, "-m", "cite.ui.cli", "index", str(corpus), "--index", str(index), "--watch"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda s=s, to=to: to.extend(s), daemon=True)
        for s, to in ((process.stdout, out), (process.stderr, err))
    ]
    for reader in readers:
        reader.start()

    def indexed() -> set[str]:
        return set(read_manifest(index).documents) if current_version(index) else set()

    def wait_for(done, what: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            assert time.monotonic() < deadline and process.poll() is None, (what, out, err)
            time.sleep(0.1)

    try:
        wait_for(lambda: indexed() == {"bees.txt", "rivers.md"}, "the first index", 120)
        wait_for(lambda: any("Watching 1 folder" in line for line in err), "the watcher", 30)
        (corpus / "owls.txt").write_text("Owls hunt at night.", encoding="utf-8")
        (corpus / "bees.txt").unlink()
        wait_for(lambda: indexed() == {"owls.txt", "rivers.md"}, "the sync", 30)
        wait_for(lambda: any("1 removed" in line for line in out), "the sync's report", 30)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=10)
    assert process.returncode == 0, err
    assert any("1 added" in line for line in out)
