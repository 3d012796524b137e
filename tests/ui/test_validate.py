"""The validation layer: what each input allows, and that every refusal names the range."""

from __future__ import annotations

import pytest
from cite.core.errors import BadQuestion
from cite.retriever.search import MAX_QUERY_CHARS, MAX_QUESTION_CHARS, check_query, check_question
from cite.ui import validate
from cite.ui.validate import BadInput
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize("value,expected", [(1, 1), (10, 10), (100, 100), (5.0, 5)])
def test_k_in_range_is_an_int(value, expected):
    assert validate.k(value) == expected and type(validate.k(value)) is int


@pytest.mark.parametrize("value", [-3, 0, 101, 100000, 2.5, float("nan"), float("inf"), "5", None, True, [3], {}])
def test_k_outside_the_range_is_refused_naming_it(value):
    with pytest.raises(BadInput, match="k must be a whole number from 1 to 100"):
        validate.k(value)


def test_a_question_is_cleaned_as_the_retriever_cleans_it():
    assert validate.question("  Who?\x00 \n") == check_question("  Who?\x00 \n") == "Who?"
    with pytest.raises(BadQuestion, match="empty"):
        validate.question(" \x07 ")
    with pytest.raises(BadInput, match="must be text, not 42"):
        validate.question(42)


def test_an_over_long_question_is_refused_not_cut():
    assert validate.question("a" * MAX_QUESTION_CHARS + "  \n") == "a" * MAX_QUESTION_CHARS  # its ends don't count
    with pytest.raises(BadInput, match=r"200,000 characters long; ask in at most 2,000"):
        validate.question("b" * 200_000)


def test_a_search_query_may_be_a_paragraph_that_is_too_long_a_question():
    paragraph = ("A passage pasted to find where it comes from. " * 120)[:5000]
    assert validate.query(paragraph) == paragraph == check_query(paragraph)
    assert len(check_question(paragraph)) == MAX_QUESTION_CHARS  # what engine.ask reads of it
    with pytest.raises(BadInput, match=r"The question is 5,000 characters long; ask in at most 2,000"):
        validate.question(paragraph)
    assert MAX_QUERY_CHARS >= 20_000 and validate.query("q" * MAX_QUERY_CHARS + " \n") == "q" * MAX_QUERY_CHARS
    with pytest.raises(BadInput, match=r"The query is 20,001 characters long; search with at most 20,000"):
        validate.query("q" * (MAX_QUERY_CHARS + 1))


def test_a_query_is_cleaned_and_refused_as_a_question_is():
    assert validate.query("  Who?\x00 \n") == validate.question("  Who?\x00 \n") == "Who?"
    with pytest.raises(BadQuestion, match="empty"):
        validate.query(" \x07 ")
    for value, shown in ((None, "null"), (42, "42"), (["who"], "a list")):
        with pytest.raises(BadInput, match=f"The query must be text, not {shown}"):
            validate.query(value)


@given(st.text(max_size=MAX_QUESTION_CHARS))
def test_cleaned_length_is_the_length_check_question_gives(text):
    expected = len(check_question(text)) if text and any(not validate._blank(ch) for ch in text) else 0
    assert validate.cleaned_length(text) == expected


def test_history_keeps_the_users_questions_from_either_shape():
    assert validate.history(None) == [] and validate.history([]) == []
    assert validate.history(["first?", "second?"]) == ["first?", "second?"]
    messages = [
        {"role": "user", "content": "Who?"},
        {"role": "assistant", "content": "Him [1]."},
        {"role": "user", "content": [{"type": "text", "text": "And then?"}]},  # Gradio 6's Chatbot
        {"role": "user", "content": [{"type": "file", "file": {"path": "x.png"}}]},
    ]
    assert validate.history(messages) == ["Who?", "And then?"]


@pytest.mark.parametrize(
    "value,message",
    [
        ("Who?", "must be a list of questions"),
        ({"role": "user"}, "must be a list of questions"),
        ([3], "History message 1 must be text or a {role, content} message"),
        ([{"role": "robot", "content": "x"}], "History message 1 must be"),
        (["ok", {"role": "user", "content": 7}], "History message 2's content must be text, not 7"),
        (["q"] * 101, "101 messages; at most 100"),
        (["x" * 20_001], "20,001 characters long; each may have at most 20,000"),
    ],
)
def test_a_bad_history_is_refused_naming_what_is_allowed(value, message):
    with pytest.raises(BadInput, match=message.replace("{", r"\{").replace("}", r"\}")):
        validate.history(value)


@pytest.mark.parametrize("name", ["notes.txt", "Report 2024.PDF", "page.html", "ünïcode.md"])
def test_plain_file_names_pass(name):
    assert validate.file_name(name) == name


@pytest.mark.parametrize(
    "name,message",
    [
        ("../../etc/passwd.txt", "is a path"),
        ("a/b.txt", "is a path"),
        ("C:\\x\\y.txt", "is a path"),
        ("..", "is a path"),
        ("", "has no name"),
        ("bad\x00.txt", "control characters"),
        ("x" * 300 + ".txt", "at most 255"),
        pytest.param(
            "é" * 130 + ".txt",
            r"264 bytes long in UTF-8 \(134 characters\); file systems allow at most 255 bytes",
            id="130 two-byte characters",
        ),
        pytest.param("😀" * 64 + ".txt", "260 bytes long in UTF-8", id="64 four-byte characters"),
        ("tool.exe", "not a type cite reads; use .docx, .epub, .htm, .html, .markdown, .md, .odt, .pdf"),
        ("noext", "not a type cite reads"),
        (5, "must be text"),
    ],
)
def test_bad_file_names_are_refused(name, message):
    with pytest.raises(BadInput, match=message):
        validate.file_name(name)


def test_a_file_name_of_255_bytes_passes():
    name = "é" * 125 + "a.txt"
    assert len(name.encode()) == 255 and validate.file_name(name) == name


def test_uploads_are_checked_for_count_and_size_before_any_is_read(tmp_path):
    small = tmp_path / "a.txt"
    small.write_text("hello", encoding="utf-8")
    assert validate.uploads([str(small)]) == [validate.Upload(small, "a.txt")]
    with pytest.raises(BadInput, match="Choose one or more files"):
        validate.uploads([])
    with pytest.raises(BadInput, match="21 files at once; add at most 20"):
        validate.uploads([str(small)] * 21)
    with pytest.raises(BadInput, match=r"a.txt is 60.0 MB; each file may have at most 50.0 MB") as refused:
        validate.uploads([str(small)], sizes=[60 * 1024 * 1024])
    assert str(tmp_path) not in str(refused.value)  # the server's path is never shown


def test_document_names_to_remove():
    assert validate.document_names(["a.txt"]) == ["a.txt"] and validate.document_names("a.txt") == ["a.txt"]
    for bad in (None, [], [""], [3], {"a": 1}):
        with pytest.raises(BadInput):
            validate.document_names(bad)
