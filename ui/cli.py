"""The `cite` command: parses arguments and delegates. Heavy imports happen per subcommand.

Exit status: 0 done; 1 refused or failed (a one-line `cite: error:` on stderr); 3 a --batch run
in which some lines were refused (each has its error line) and the others answered; 130 interrupted.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cite.core.errors import BadQuestion, CiteError, DocumentError, IndexBusy
from cite.core.store import DEFAULT_INDEX, current_version

PROJECT_SEEDS = Path(__file__).resolve().parents[1] / "seeds"
EVAL_INDEXES = Path(".cite/eval")
SEED_EVAL_INDEX = EVAL_INDEXES / "seeds"  # the seed set's own index: evaluating never touches the user's
BATCH_REFUSED = 3  # exit status: some --batch lines were refused, the others answered
# A --batch line longer than this is refused unread: a search query is at most MAX_QUERY_CHARS
# (20,000) characters, under 120,000 bytes even written as JSON \u escapes.
MAX_BATCH_LINE_BYTES = 1 << 20


def default_seeds() -> Path:
    """`seeds/` here if there is one, else the sample documents shipped with cite."""
    local = Path("seeds")
    return local if local.is_dir() else PROJECT_SEEDS


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        return int(args.run(args) or 0)
    except CiteError as error:
        print(f"cite: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cite: interrupted; the last complete index is untouched.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cite search ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cite", description="Answers with citations you can check, offline.")
    sub = parser.add_subparsers(dest="command", required=True)

    index = sub.add_parser("index", help="index files and folders (incremental)")
    index.add_argument("paths", nargs="*", type=Path, help="files or folders (default: seeds/)")
    _index_option(index)
    index.add_argument("--max-chars", type=int, default=None, help="passage size limit (default 1000)")
    index.add_argument(
        "--fast",
        action="store_true",
        help="make each passage's vector the mean of its sentences' instead of embedding it whole: "
        "faster indexing, slightly lower ranking (figures: bench/results/README.md)",
    )
    index.add_argument("--embed-passages", action="store_true", help=argparse.SUPPRESS)  # the default again
    index.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="if another program is writing the index (e.g. `cite serve` indexing an upload), wait up to this long "
        "for it (default 0: refuse at once)",
    )
    index.add_argument(
        "--ray", nargs="?", const="local", metavar="ADDRESS", help="embed on a Ray cluster (no ADDRESS: a local Ray)"
    )
    _watch_options(index, "then keep watching the folders and index each change, until interrupted")
    index.set_defaults(run=_index)

    for name, run, help_text, what in (
        ("search", _search, "rank passages for a question (citation lookup)", "the question, or a passage to find"),
        ("ask", _ask, "answer a question with citations", "the question"),
    ):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("question", nargs="?", help=f"{what} (or use --batch)")
        command.add_argument(
            "--batch",
            type=Path,
            help='JSONL file of {"id", "question"} lines, answered one JSON line each, in order, as they are made; '
            'a bad line gets {"id", "line", "error"} in its place (on stderr without --json), the others still '
            f"run, and the exit status is {BATCH_REFUSED}",
        )
        command.add_argument("--k", type=_k, default=10, help="passages to return, 1 to 100 (default 10)")
        command.add_argument("--json", action="store_true", help="print JSON")
        command.add_argument("--ray", metavar="ADDRESS", help="query the index's shard actors on this Ray cluster")
        _index_option(command)
        command.set_defaults(run=run)

    evaluate = sub.add_parser("eval", help="measure retrieval accuracy (seed questions, your own, or BEIR)")
    evaluate.add_argument("--questions", type=Path, help="JSONL of {id, question, doc, evidence} (default: seed set)")
    evaluate.add_argument("--index", type=Path, help="index to evaluate (default: a private index of seeds/)")
    evaluate.add_argument("--beir", type=Path, help="a BEIR folder: corpus.jsonl, queries.jsonl, qrels/")
    evaluate.add_argument(
        "--split",
        help="BEIR: the qrels split (default test; tune on train). Question files: only the questions "
        'whose "split" is this (e.g. test, the held-out ones)',
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    _report_dir_option(evaluate)
    evaluate.add_argument(
        "--tune",
        action="store_true",
        help="also tune the fusion weights on these questions and save them with the index "
        "when they win on held-out questions",
    )
    evaluate.add_argument(
        "--calibrate",
        action="store_true",
        help="also fit the abstention model (confidence weights and threshold) on these questions and print it",
    )
    evaluate.add_argument(
        "--calibrate-also",
        nargs=2,
        action="append",
        type=Path,
        default=[],
        metavar=("QUESTIONS", "INDEX"),
        help="with --calibrate: fit on this question file over its index too (repeatable; --split applies)",
    )
    evaluate.set_defaults(run=_eval)

    verify = sub.add_parser("verify", help="check every index file against its SHA-256 in the manifest")
    _index_option(verify)
    verify.set_defaults(run=_verify)

    mcp = sub.add_parser("mcp", help="serve search, ask and read to an MCP client (Claude Desktop, Cursor) over stdio")
    _index_option(mcp)
    mcp.set_defaults(run=_mcp)

    serve = sub.add_parser("serve", help="start the chat UI")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    serve.add_argument("--port", type=int, default=7860)
    serve.add_argument("--expose", action="store_true", help="allow a --host other than loopback (others can connect)")
    serve.add_argument(
        "--trust-proxy",
        action="store_true",
        help="behind a reverse proxy: read the client's address from X-Forwarded-For (ignored otherwise)",
    )
    serve.add_argument(
        "--password", default=os.environ.get("CITE_PASSWORD"), help="require login as user 'cite' ($CITE_PASSWORD)"
    )
    _watch_options(serve, "keep the folders the index was built from in sync: each change is indexed")
    serve.add_argument("--ray", metavar="ADDRESS", help="serve from shard actors on this Ray cluster")
    serve.add_argument("--shards", type=int, default=2, help="with --ray: shard actors (default 2)")
    serve.add_argument("--replicas", type=int, default=0, help="with --ray: Ray Serve replicas of the HTTP API")
    _index_option(serve)
    _report_dir_option(serve, "the Eval tab's")
    serve.set_defaults(run=_serve)
    return parser


def _watch_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--watch", action="store_true", help=what)
    parser.add_argument(
        "--poll", action="store_true", help="with --watch: poll the folders (for network file systems)"
    )


def _index_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX, help=f"index folder (default {DEFAULT_INDEX})")


def _report_dir_option(parser: argparse.ArgumentParser, whose: str = "the") -> None:
    """--report-dir; None stands for eval.report.REPORTS (read there, so parsing imports nothing heavy)."""
    parser.add_argument(
        "--report-dir", type=Path, default=None, help=f"where {whose} Markdown + PNG reports go (default eval/reports)"
    )


def _index(args: argparse.Namespace) -> int:
    from cite.core.config import SplitSettings
    from cite.core.embedder import default_embedder
    from cite.indexer.build import build_index
    from cite.indexer.loaders import load_paths, source_of

    paths = args.paths or [default_seeds()]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise DocumentError(f"No such file or folder: {', '.join(missing)}; nothing was changed.")
    loaded = load_paths(paths)
    for skipped in loaded.skipped:
        print(f"cite: skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    for note in loaded.notes:  # e.g. pages read by OCR: worth knowing, not an error
        print(f"cite: {note.path}: {note.message}", file=sys.stderr)
    split = SplitSettings(
        max_chars=SplitSettings.max_chars if args.max_chars is None else args.max_chars,
        passage_vectors="sentence-mean" if args.fast and not args.embed_passages else "passage",
    )
    if args.ray is not None:  # the same build, its embedding spread over a Ray cluster
        from cite.indexer.distributed import ray_builder

        build_index = ray_builder(args.ray)
    embedder, progress = default_embedder(), _progress_printer()
    deadline = time.monotonic() + max(args.wait, 0)
    while True:
        try:
            report = build_index(
                loaded.documents, args.index, embedder, split, progress, scope={source_of(p) for p in paths}
            )
            break
        except IndexBusy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
    print(_summary(report, len(loaded.documents)))
    named_files_failed = any(p.is_file() and any(s.path == p.name for s in loaded.skipped) for p in paths)
    if args.watch:
        return _watch_and_index(args, paths)
    return 1 if named_files_failed else 0


def _watch_and_index(args: argparse.Namespace, paths: list[Path]) -> int:
    """`cite index FOLDER... --watch`: each burst of changes in the folders re-runs the same
    incremental index, until interrupted."""
    from cite.indexer.sync import FolderSync

    folders = [p for p in paths if p.is_dir()]
    if not folders:
        raise CiteError("--watch watches folders; name at least one folder to index.")
    again = argparse.Namespace(**{**vars(args), "watch": False, "paths": folders})

    def sync(_: list[Path]) -> str:
        _index(again)
        return ""

    watcher = FolderSync(folders, sync, poll=args.poll)
    print(f"cite: {watcher.state().describe()}; Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        watcher.run_forever()
    except KeyboardInterrupt:
        pass
    return 0


def _verify(args: argparse.Namespace) -> int:
    from cite.core.store import verify_index

    files, size = verify_index(args.index)  # IndexCorrupt names the damaged file
    print(f"Index {args.index} is intact: {files} files, {size / 2**20:.1f} MB, every SHA-256 matches.")
    return 0


def _summary(report: Any, documents: int) -> str:
    if not report.wrote:
        return f"Index {report.path} is up to date: {documents} documents, {report.passages} passages."
    parts = [f"{len(getattr(report, kind))} {kind}" for kind in ("added", "changed", "removed", "unchanged")]
    lines = [
        f"Indexed {documents} documents into {report.path}: {', '.join(parts)}; "
        f"{report.passages} passages, {report.embedded} embedded in {report.seconds:.1f}s."
    ]
    if report.rebuilt_because:
        lines.append(f"Rebuilt from scratch because {report.rebuilt_because}.")
    for kind in ("added", "changed", "removed"):
        lines += [f"  {kind}: {name}" for name in getattr(report, kind)]
    return "\n".join(lines)


def _progress_printer():
    """Texts/s and ETA on a terminal; silent when output is piped."""
    if not sys.stderr.isatty():
        return None
    started = time.perf_counter()

    def show(done: int, total: int) -> None:
        rate = done / max(time.perf_counter() - started, 1e-9)
        eta = (total - done) / rate if rate else 0.0
        end = "\n" if done >= total else ""
        print(f"\r  embedded {done}/{total} texts, {rate:.0f} texts/s, ETA {eta:.0f}s ", end=end, file=sys.stderr)

    return show


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


def _k(text: str) -> int:
    """--k's parser: validate.k's range and message, as argparse's own error."""
    from cite.ui import validate

    try:
        return validate.k(int(text) if text.strip().lstrip("+-").isdigit() else text)
    except validate.BadInput as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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


def _search(args: argparse.Namespace) -> int:
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


def _ask(args: argparse.Namespace) -> int:
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


def _eval(args: argparse.Namespace) -> int:
    from cite.core.config import load_settings
    from cite.core.embedder import default_embedder
    from cite.eval.datasets import SEED_QUESTIONS
    from cite.eval.report import REPORTS, format_table, report_json, write_report
    from cite.eval.suite import evaluate_beir, evaluate_questions, refuse_tuning_on_test, tune_beir, tune_questions
    from cite.eval.tune import save_if_better

    if args.beir:
        args.split = args.split or "test"
    if args.tune and args.beir:
        refuse_tuning_on_test(args.split)  # before the eval, not after it
    questions = args.questions or SEED_QUESTIONS
    if args.calibrate_also and not args.calibrate:
        raise CiteError("--calibrate-also adds questions to --calibrate; add --calibrate.")
    if args.calibrate:  # refused before the eval runs, not after it
        from cite.eval.calibrate import check_both_kinds
        from cite.eval.datasets import load_questions

        if args.beir:
            raise CiteError("--calibrate needs answerable and unanswerable questions (--questions or the seed set).")
        from cite.eval.suite import questions_in_split

        calibrating = [questions_in_split(load_questions(questions), args.split)]
        for path, other_index in args.calibrate_also:
            if current_version(other_index) is None:
                raise CiteError(f"--calibrate-also: no index at {other_index}; build it with `cite index`.")
            calibrating.append(questions_in_split(load_questions(path), args.split))
        check_both_kinds([q for group in calibrating for q in group])
    root = _eval_index(args)
    embedder, settings = default_embedder(), load_settings(root)
    if args.beir:
        report = evaluate_beir(args.beir, root, embedder, settings, args.split, _progress_printer())
    else:
        own_seeds = args.index is None and args.questions is None
        documents = [default_seeds()] if own_seeds else None
        report = evaluate_questions(questions, root, embedder, settings, documents, _progress_printer(), args.split)
    markdown, png = write_report(report, args.report_dir or REPORTS)
    print(json.dumps(report_json(report)) if args.json else f"{format_table(report)}\nreport: {markdown} ({png.name})")
    if args.tune:
        if args.beir:
            tuning = tune_beir(args.beir, root, embedder, settings, args.split)
        else:
            tuning = tune_questions(questions, root, embedder, settings, args.split)
        print(save_if_better(tuning, root, settings), file=sys.stderr if args.json else sys.stdout)
    if args.calibrate:
        from cite.eval.calibrate import calibration
        from cite.retriever.engine import Engine

        engines = [Engine(root, embedder, settings)]
        engines += [Engine(other, embedder) for _, other in args.calibrate_also]  # each with its own settings
        pairs = list(zip(engines, calibrating, strict=True))
        print(calibration(pairs), file=sys.stderr if args.json else sys.stdout)
    return 0


def _eval_index(args: argparse.Namespace) -> Path:
    """--index, else: a BEIR set's own index; your index for your questions; the seeds' own index."""
    if args.index is not None:
        return args.index
    if args.beir:
        return EVAL_INDEXES / f"beir-{args.beir.resolve().name}"
    return DEFAULT_INDEX if args.questions else SEED_EVAL_INDEX


def _mcp(args: argparse.Namespace) -> int:
    from cite.ui.mcp_server import run_stdio

    run_stdio(args.index)
    return 0


def _serve(args: argparse.Namespace) -> int:
    limit_malloc_arenas()  # first: it binds only threads that have not yet allocated
    from cite.ui.guard import is_loopback
    from cite.ui.server import serve

    if not is_loopback(args.host) and not args.expose:
        raise CiteError(
            f"Refusing to listen on {args.host}: anyone who can reach it could read your documents. "
            "Add --expose (and --password) if that is what you want."
        )
    from cite.eval.report import REPORTS

    if args.ray:  # shard actors (and Serve replicas) on a Ray cluster
        from cite.ui.ray_serve import serving_on

        if args.watch:
            raise CiteError("--watch is not available with --ray yet: run `cite index FOLDER --watch --ray` beside it.")
        serve = serving_on(args.ray, args.shards, args.replicas)
        extra = {}
    else:
        extra = {"watch": args.watch, "poll": args.poll}
    serve(
        args.index,
        host=args.host,
        port=args.port,
        password=args.password or None,
        reports=args.report_dir or REPORTS,
        trust_proxy=args.trust_proxy,
        **extra,
    )
    return 0


M_ARENA_MAX = -8  # glibc's mallopt parameter
SERVER_ARENAS = 2


def limit_malloc_arenas(arenas: int = SERVER_ARENAS) -> None:
    """glibc gives each thread that allocates its own malloc arena, up to eight per core, and each
    keeps what its thread freed. Under the soak, two arenas left the server 10% smaller (301 against
    335 MB) and growing a third slower (9 against 13 MB in 6 minutes), at the same requests/s."""
    try:
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):  # not glibc: its allocator decides
        pass


if __name__ == "__main__":
    sys.exit(main())
