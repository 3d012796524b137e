"""`cite search` and `cite ask`: one question from the command line, or each line of a --batch
JSONL file, checked on its own and answered as soon as it is read (a bad line is reported in its
place and the others still run)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import IO, Any

from cite.core.errors import BadQuestion, CiteError

BATCH_REFUSED = 3  # exit status: some --batch lines were refused, the others answered
# A --batch line longer than this is refused unread: a search query is at most MAX_QUERY_CHARS
# (20,000) characters, under 120,000 bytes even written as JSON \u escapes.
MAX_BATCH_LINE_BYTES = 1 << 20


@dataclass(frozen=True)
class Line:
    """One question to run, checked: the command line's (number None) or a --batch line's.
    `error` says why a --batch line was refused instead (then `text` is empty)."""

    number: int | None
    qid: Any
    text: str = ""
    error: str | None = None


def _questions(args: argparse.Namespace, check: Callable[[Any], str]) -> Iterator[Line]:
    """The question given, checked by `check` (CiteError if it fails), or each --batch line as
    it is read, checked on its own: one bad line is reported and the others still run."""
    if args.batch is None:
        if args.question is None:
            raise BadQuestion("Give a QUESTION or --batch FILE.jsonl.")
        yield Line(None, None, check(args.question))
        return
    if args.question is not None:
        raise BadQuestion("Give a QUESTION or --batch FILE.jsonl, not both.")
    try:
        handle = args.batch.open("rb")
    except OSError as error:
        raise CiteError(f"Cannot read {args.batch}: {error.strerror}.") from None
    with handle:
        for number, raw in enumerate(_raw_lines(handle), start=1):
            if raw is not None and not raw.strip():
                continue  # a blank line (the file's last newline, a gap) asks nothing
            yield _batch_line(number, raw, check)


def _raw_lines(handle: IO[bytes]) -> Iterator[bytes | None]:
    """Each line without its line ending, read as it comes (a pipe streams); None for a line
    over MAX_BATCH_LINE_BYTES, skipped without holding it in memory."""
    while line := handle.readline(MAX_BATCH_LINE_BYTES + 1):
        if len(line) > MAX_BATCH_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := handle.readline(MAX_BATCH_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield None
            continue
        yield line.rstrip(b"\r\n")


def _batch_line(number: int, raw: bytes | None, check: Callable[[Any], str]) -> Line:
    """A --batch line checked: its id and question, or why it cannot be run."""
    shape = '{"id": ..., "question": ...}'
    if raw is None:
        return Line(number, None, error=f"the line is over {MAX_BATCH_LINE_BYTES:,} bytes; each is one {shape} object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Line(number, None, error=f"the line is not UTF-8 text; each is one {shape} object")
    try:
        record = json.loads(text.removeprefix("\ufeff") if number == 1 else text)  # the BOM some editors write
    except (ValueError, RecursionError) as error:  # RecursionError: brackets nested thousands deep
        detail = f"{error.msg} at column {error.colno}" if isinstance(error, json.JSONDecodeError) else "unreadable"
        return Line(number, None, error=f"the line is not JSON ({detail}); each is one {shape} object")
    if not isinstance(record, dict):
        return Line(number, None, error=f"the line is a JSON {_json_kind(record)}, not a {shape} object")
    qid = record.get("id")
    if qid is None:
        return Line(number, None, error='the line has no "id"; give each line a string or whole-number id')
    if isinstance(qid, bool) or not isinstance(qid, str | int):
        return Line(number, None, error=f'the line\'s "id" is a JSON {_json_kind(qid)}, not a string or whole number')
    if isinstance(qid, str) and not qid.isascii() and _has_surrogates(qid):  # it could not be written back out
        return Line(number, None, error='the line\'s "id" holds a lone surrogate (\\ud800-\\udfff), not text')
    if "question" not in record:
        return Line(number, qid, error=f'the line has no "question"; each is one {shape} object')
    try:
        return Line(number, qid, check(record["question"]))
    except CiteError as error:
        return Line(number, qid, error=str(error))


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _json_kind(value: Any) -> str:
    kinds = ((bool, "true/false"), (dict, "object"), (list, "array"), (str, "string"), (int | float, "number"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "null")


def _each(args: argparse.Namespace, check: Callable[[Any], str], respond: Callable[[Any, str], Any]) -> int:
    """Runs `respond(engine, text)` for each question and prints its reply as soon as it is made.

    A reply is a JSON-able dict (printed as one line, with the --batch line's id) or text. The
    engine (and its model) loads at the first good question, so bad input alone loads nothing.

    Returns:
        0, or BATCH_REFUSED when a --batch line was refused (the others were answered).
    """
    refused = total = 0
    with ExitStack() as stack:
        engine = None
        for line in _questions(args, check):
            total += 1
            if line.error is not None:
                refused += 1
                message = " ".join(line.error.split())  # one line, whatever the message held
                if args.json:
                    _print_json({"id": line.qid, "line": line.number, "error": message})
                else:
                    print(f"cite: error: {args.batch}:{line.number}: {message}", file=sys.stderr)
                continue
            if engine is None:
                engine = stack.enter_context(_engine(args))
            reply = respond(engine, line.text)
            if isinstance(reply, dict):
                _print_json({"id": line.qid, **reply} if args.batch else reply)
            else:
                print(reply, flush=True)
    if refused:
        print(f"cite: {refused} of {total} lines in {args.batch} refused; {total - refused} answered.", file=sys.stderr)
        return BATCH_REFUSED
    return 0


def _print_json(record: dict[str, Any]) -> None:
    # flush: a reader of a long batch (a pipe) gets each answer when it is made, not at the end
    print(json.dumps(record, ensure_ascii=False), flush=True)


@contextmanager
def _engine(args: argparse.Namespace) -> Iterator[Any]:
    from cite.retriever.engine import Engine
    from cite.retriever.generate import chat_model_from_env

    if args.ray:  # the same engine over shard actors on a Ray cluster
        from cite.retriever.shards import sharded_engine

        engine = sharded_engine(args.ray, args.index)
        try:
            yield engine
        finally:
            engine.shards.release()
        return
    yield Engine(args.index, chat_model=chat_model_from_env())


def run_search(args: argparse.Namespace) -> int:
    """`cite search`: ranked passages for each query, as text or JSON."""
    from cite.core.serialize import hits_json
    from cite.ui import validate
    from cite.ui.render import document_texts

    def respond(engine: Any, query: str) -> dict[str, Any] | str:
        snapshot = engine.snapshot()
        hits = engine.search(query, args.k, snapshot)
        if args.batch or args.json:
            return {"hits": hits_json(hits)}
        return _format_hits(hits, document_texts(snapshot.index.documents, hits)) or "No passage matches."

    return _each(args, validate.query, respond)


def run_ask(args: argparse.Namespace) -> int:
    """`cite ask`: an answer with its citations for each question, as text or JSON."""
    from cite.core.serialize import answer_json
    from cite.ui import validate

    def respond(engine: Any, question: str) -> dict[str, Any] | str:
        answer = engine.ask(question, args.k)
        return answer_json(answer) if args.batch or args.json else format_answer(answer)

    return _each(args, validate.question, respond)


def _format_hits(hits: Any, texts: dict[str, str] | None = None) -> str:
    """Each passage's place and scores, then the sentence that best matches (given the
    documents' texts) or the start of the passage."""
    from cite.ui.render import place, sentence_text

    lines = []
    for rank, hit in enumerate(hits, start=1):
        scores = "  ".join(f"{name} {value:.3f}" for name, value in hit.scores.items())
        p = hit.passage
        lines.append(f"{rank:>2}. {place(p.doc, p.start, p.end, p.page, p.section)}  ({scores})")
        if texts and hit.sentence and hit.passage.doc in texts:
            start, end = hit.sentence
            lines.append(
                f'    {hit.passage.doc}:{start}-{end}  "{sentence_text(texts[hit.passage.doc], hit.sentence)}"'
            )
        else:
            lines.append(f"    {_clip(hit.passage.text, 300)}")
    return "\n".join(lines)


def format_answer(answer: Any) -> str:
    """The answer for a terminal: text with [n], then each source with its exact place."""
    if answer.abstained:
        lines = [
            f"The documents don't answer this (confidence {answer.confidence:.2f}). Closest passages:",
            _format_hits(answer.hits[:3]) or "  (none)",
        ]
        return "\n".join(lines)
    from cite.ui.render import place

    lines = [answer.text, "", "Sources:"]
    for c in answer.citations:
        quote = " ".join(c.quote.split())
        lines.append(f'[{c.n}] {place(c.doc, c.start, c.end, c.page, c.section, c.end_page)}  "{_clip(quote, 200)}"')
    unsupported = [claim for claim in answer.claims if not claim.supported]
    for claim in unsupported:
        lines.append(f"⚠ not supported by its citation (support {claim.support:.2f}): {_clip(claim.text, 160)}")
    lines.append(f"confidence {answer.confidence:.2f}")
    return "\n".join(lines)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
