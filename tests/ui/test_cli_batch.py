"""`cite search` and `cite ask` over a --batch file, each line on its own: in-process over the
fake embedder (fast), and the real command reading a named pipe (slow)."""

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
from cite.ui.query_commands import BATCH_REFUSED, MAX_BATCH_LINE_BYTES

from tests.helpers import ROOT
from tests.ui.helpers import CASPIAN

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
    assert status == BATCH_REFUSED == 3
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
        json.dumps({"id": "big", "question": "x" * MAX_BATCH_LINE_BYTES}),
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
