"""The `cite` command as a user runs it: real processes, real model, real files (slow); and
its --batch plumbing in-process over the fake embedder (fast)."""

import json
import os
import select
import subprocess
import sys

import pytest
from cite.core.config import SplitSettings
from cite.indexer.build import build_index
from cite.indexer.loaders import load_paths
from cite.retriever.search import MAX_QUERY_CHARS
from cite.ui import cli

from tests.conftest import ROOT


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
        "from ui.cli import limit_malloc_arenas\n"
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
    import time

    from cite.core.store import current_version, read_manifest

    index = tmp_path / "index"
    process = subprocess.Popen(
        [sys.executable, "-m", "cite.ui.cli", "index", str(corpus), "--index", str(index), "--watch"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def indexed() -> set[str]:
        return set(read_manifest(index).documents) if current_version(index) else set()

    try:
        deadline = time.monotonic() + 120
        while indexed() != {"bees.txt", "rivers.md"}:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.2)
        time.sleep(2)  # the watcher starts once the first index is written
        (corpus / "owls.txt").write_text("Owls hunt at night.", encoding="utf-8")
        (corpus / "bees.txt").unlink()
        deadline = time.monotonic() + 30
        while indexed() != {"owls.txt", "rivers.md"}:
            assert time.monotonic() < deadline, indexed()
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Watching 1 folder" in err and "1 added" in out and "1 removed" in out


# --batch: each line on its own --------------------------------------------------------------

CASPIAN = "Which river flows into the Caspian Sea?"
LONG = ("The Volga flows into the Caspian Sea. " * 80)[:3000]  # a search query; too long a question
BATCH = [
    json.dumps({"id": "good", "question": CASPIAN}),
    json.dumps({"id": "long", "question": LONG}),
    '{"id": "broken", "question": "Who?"',
    json.dumps({"id": "null", "question": None}),
    json.dumps({"question": "Do bees make honey?"}),
    json.dumps({"id": 6, "question": "Do bees make honey?"}),
]


@pytest.fixture
def fake_index(corpus, tmp_path, fake_embedder, monkeypatch):
    """The tiny corpus indexed with the fake embedder, which `cite` then loads in this process."""
    root = tmp_path / "index"
    build_index(load_paths([corpus]).documents, root, fake_embedder, SplitSettings())
    monkeypatch.setattr("cite.retriever.engine.default_embedder", lambda: fake_embedder)
    monkeypatch.delenv("CITE_LLM_URL", raising=False)
    return root


def run(capsys, *args):
    """`cite ARGS` in this process: (exit status, stdout, stderr)."""
    status = cli.main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return status, out, err


def batch_file(tmp_path, *lines: str):
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["search", "ask"])
def test_a_bad_batch_line_gets_an_error_line_in_its_place_and_the_rest_run(command, fake_index, tmp_path, capsys):
    batch = batch_file(tmp_path, *BATCH)
    status, out, err = run(capsys, command, "--batch", batch, "--json", "--index", fake_index)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["id"] for line in lines] == ["good", "long", None, "null", None, 6]
    errors = {line["line"]: line["error"] for line in lines if "error" in line}
    assert all(set(line) == {"id", "line", "error"} for line in lines if "error" in line)
    assert "the line is not JSON" in errors[3] and "must be text, not null" in errors[4]
    assert 'the line has no "id"' in errors[5]
    if command == "search":  # 3,000 characters is a paragraph to look up
        assert set(errors) == {3, 4, 5}
        assert lines[0]["hits"][0]["doc"] == "rivers.md" and lines[1]["hits"]
    else:
        assert set(errors) == {2, 3, 4, 5}
        assert errors[2].startswith("The question is 3,000 characters long; ask in at most 2,000")
        assert {"answer", "abstained", "citations"} <= set(lines[0]) and {"answer", "hits"} <= set(lines[5])
    assert status == cli.BATCH_REFUSED == 3
    assert f"{len(errors)} of 6 lines in {batch} refused; {6 - len(errors)} answered" in err


def test_without_json_a_bad_line_is_named_on_stderr_and_the_others_still_print(fake_index, tmp_path, capsys):
    batch = batch_file(tmp_path, *BATCH)
    status, out, err = run(capsys, "search", "--batch", batch, "--index", fake_index)
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["good", "long", 6]
    assert f"cite: error: {batch}:3: the line is not JSON" in err
    assert f"cite: error: {batch}:4: The query must be text, not null." in err
    assert f"cite: error: {batch}:5: the line has no" in err and status == 3


def test_batch_answers_are_printed_as_they_are_made(fake_index, fake_embedder, tmp_path, capsys, monkeypatch):
    printed = []  # what stdout held each time a question was about to be embedded
    encode = fake_embedder.encode

    def watched(texts):
        printed.append(capsys.readouterr().out)
        return encode(texts)

    monkeypatch.setattr(fake_embedder, "encode", watched)
    questions = [json.dumps({"id": n, "question": CASPIAN}) for n in range(3)]
    status = cli.main(["search", "--batch", str(batch_file(tmp_path, *questions)), "--index", str(fake_index)])
    printed.append(capsys.readouterr().out)
    assert status == 0 and [text.count("\n") for text in printed] == [0, 1, 1, 1]


def test_a_batch_of_bad_lines_alone_loads_no_model_and_reports_each(tmp_path, capsys, monkeypatch):
    def no_model():
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("cite.retriever.engine.default_embedder", no_model)
    batch = tmp_path / "bad.jsonl"
    lines = [
        '\ufeff{"id": "bom", "question": "  "}',  # an editor's byte-order mark, then an empty question
        "not json",
        "[1, 2]",
        '{"id": true, "question": "Who?"}',
        "",  # blank: skipped, not an error
        b"\xff\xfe not UTF-8",
        json.dumps({"id": "big", "question": "x" * cli.MAX_BATCH_LINE_BYTES}),
        '{"id": "after", "question": 5}',
        "[" * 100_000,
        '{"id": "\\ud800", "question": "Who?"}',
    ]
    batch.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines))
    status, out, err = run(capsys, "ask", "--batch", batch, "--json", "--index", tmp_path / "no-index")
    errors = [json.loads(line) for line in out.splitlines()]
    assert [(e["line"], e["id"]) for e in errors] == [
        (1, "bom"), (2, None), (3, None), (4, None), (6, None), (7, None), (8, "after"), (9, None), (10, None)
    ]  # fmt: skip
    messages = [e["error"] for e in errors]
    assert messages[0].startswith("The question is empty") and "is not JSON" in messages[1]
    assert "is a JSON array" in messages[2] and '"id" is a JSON true/false' in messages[3]
    assert "not UTF-8" in messages[4] and "over 1,048,576 bytes" in messages[5]
    assert "must be text, not 5" in messages[6] and "not JSON" in messages[7] and "surrogate" in messages[8]
    assert status == 3 and "9 of 9 lines" in err


def test_a_paragraph_is_a_search_query_but_too_long_a_question(fake_index, capsys):
    paragraph = ("The Volga is the longest river in Europe; it flows into the Caspian Sea. " * 70)[:5000]
    status, out, _ = run(capsys, "search", paragraph, "--json", "--index", fake_index)
    assert status == 0 and json.loads(out)["hits"][0]["doc"] == "rivers.md"
    status, out, err = run(capsys, "ask", paragraph, "--json", "--index", fake_index)
    assert status == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("cite: error: The question is 5,000 characters long; ask in at most 2,000")


def test_a_long_query_is_searched_whole_not_cut_at_the_question_limit(fake_index, capsys):
    query = "zzz " * 600 + "honey"  # its only indexed word comes after character 2,000
    status, out, _ = run(capsys, "search", query, "--json", "--index", fake_index)
    top = json.loads(out)["hits"][0]
    assert status == 0 and top["doc"] == "bees.txt" and top["scores"]["bm25"] > 0
    status, _, err = run(capsys, "search", "x" * (MAX_QUERY_CHARS + 1), "--index", fake_index)
    assert status == 1 and "The query is 20,001 characters long; search with at most 20,000" in err


def test_a_question_and_a_batch_together_are_refused(tmp_path, capsys):
    status, out, err = run(capsys, "search", "Who?", "--batch", batch_file(tmp_path, *BATCH))
    assert status == 1 and out == "" and "not both" in err


def _line_within(stream, seconds: float) -> str:
    ready, _, _ = select.select([stream], [], [], seconds)
    assert ready, f"no output within {seconds} s"
    return stream.readline()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a named pipe")
def test_a_batch_from_a_pipe_is_answered_line_by_line(seed_index, tmp_path):
    """The real command reads a line, answers it, and prints the answer before the next line
    exists: a long batch streams; a bad line in the middle stops nothing."""
    import errno
    import time

    fifo = tmp_path / "questions.jsonl"
    os.mkfifo(fifo)
    with (tmp_path / "stderr").open("w") as stderr:
        args = ["search", "--batch", fifo, "--json", "--index", seed_index, "--k", "2"]
        command = [sys.executable, "-m", "cite.ui.cli", *map(str, args)]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            deadline = time.monotonic() + 120
            while True:  # open the pipe once cite reads it (a plain open would hang if cite had died)
                try:
                    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                    break
                except OSError as error:
                    assert error.errno == errno.ENXIO and process.poll() is None and time.monotonic() < deadline
                    time.sleep(0.1)
            os.set_blocking(fd, True)
            with os.fdopen(fd, "w", encoding="utf-8") as pipe:
                pipe.write(json.dumps({"id": 1, "question": "Who publishes the Monitor?"}) + "\n")
                pipe.flush()
                first = json.loads(_line_within(process.stdout, 120))  # while the batch is still open
                assert first["id"] == 1 and len(first["hits"]) == 2
                pipe.write('{"id": 2, "question": \n' + json.dumps({"id": 3, "question": LONG}) + "\n")
            rest = [json.loads(line) for line in process.stdout.read().splitlines()]
            assert process.wait(timeout=120) == 3
        finally:  # a failed check leaves no cite behind
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [line["id"] for line in rest] == [None, 3] and rest[0]["line"] == 2 and rest[1]["hits"]
    assert "1 of 3 lines" in (tmp_path / "stderr").read_text()
