"""The `cite` command: parses arguments and delegates. Heavy imports happen per subcommand."""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.errors import BadQuestion, CiteError, DocumentError, IndexBusy
from core.store import DEFAULT_INDEX, current_version

PROJECT_SEEDS = Path(__file__).resolve().parents[1] / "seeds"
EVAL_INDEXES = Path(".cite/eval")
SEED_EVAL_INDEX = EVAL_INDEXES / "seeds"  # the seed set's own index: evaluating never touches the user's


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
        help="make each passage's vector the mean of its sentences' instead of embedding it whole "
        "(about half the indexing time; SciFact test nDCG@10 .728 instead of .741)",
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
    index.set_defaults(run=_index)

    for name, run, help_text in (
        ("search", _search, "rank passages for a question (citation lookup)"),
        ("ask", _ask, "answer a question with citations"),
    ):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("question", nargs="?", help="the question (or use --batch)")
        command.add_argument("--batch", type=Path, help='JSONL file of {"id", "question"} lines')
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

    serve = sub.add_parser("serve", help="start the chat UI")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    serve.add_argument("--port", type=int, default=7860)
    serve.add_argument("--expose", action="store_true", help="allow a --host other than loopback (others can connect)")
    serve.add_argument(
        "--password", default=os.environ.get("CITE_PASSWORD"), help="require login as user 'cite' ($CITE_PASSWORD)"
    )
    serve.add_argument("--ray", metavar="ADDRESS", help="serve from shard actors on this Ray cluster")
    serve.add_argument("--shards", type=int, default=2, help="with --ray: shard actors (default 2)")
    serve.add_argument("--replicas", type=int, default=0, help="with --ray: Ray Serve replicas of the HTTP API")
    _index_option(serve)
    _report_dir_option(serve, "the Eval tab's")
    serve.set_defaults(run=_serve)
    return parser


def _index_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX, help=f"index folder (default {DEFAULT_INDEX})")


def _report_dir_option(parser: argparse.ArgumentParser, whose: str = "the") -> None:
    """--report-dir; None stands for eval.report.REPORTS (read there, so parsing imports nothing heavy)."""
    parser.add_argument(
        "--report-dir", type=Path, default=None, help=f"where {whose} Markdown + PNG reports go (default eval/reports)"
    )


def _index(args: argparse.Namespace) -> int:
    from core.config import SplitSettings
    from core.embedder import default_embedder
    from indexer.build import build_index
    from indexer.loaders import load_paths, source_of

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
        from indexer.distributed import ray_builder

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
    return 1 if named_files_failed else 0


def _verify(args: argparse.Namespace) -> int:
    from core.store import verify_index

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


def _questions(args: argparse.Namespace) -> Iterator[tuple[Any, str]]:
    """(id, question) pairs from --batch, or the one question given."""
    if args.batch is None:
        if args.question is None:
            raise BadQuestion("Give a QUESTION or --batch FILE.jsonl.")
        yield None, args.question
        return
    try:
        lines = args.batch.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise CiteError(f"Cannot read {args.batch}: {error.strerror}.") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            yield record["id"], str(record["question"])
        except (ValueError, KeyError, TypeError):
            raise CiteError(f'{args.batch}:{number} is not a {{"id": ..., "question": ...}} line.') from None


def _checked(questions: Iterator[tuple[Any, str]]) -> list[tuple[Any, str]]:
    """All questions read and checked before any model loads: bad input fails fast."""
    from ui import validate

    checked = []
    for qid, question in questions:
        try:
            checked.append((qid, validate.question(question)))
        except CiteError as error:
            raise type(error)(str(error) if qid is None else f"question {qid}: {error}") from None
    return checked


def _k(text: str) -> int:
    """--k's parser: validate.k's range and message, as argparse's own error."""
    from ui import validate

    try:
        return validate.k(int(text) if text.strip().lstrip("+-").isdigit() else text)
    except validate.BadInput as error:
        raise argparse.ArgumentTypeError(str(error)) from None


@contextmanager
def _engine(args: argparse.Namespace) -> Iterator[Any]:
    from retriever.engine import Engine
    from retriever.generate import chat_model_from_env

    if args.ray:  # the same engine over shard actors on a Ray cluster
        from retriever.shards import sharded_engine

        engine = sharded_engine(args.ray, args.index)
        try:
            yield engine
        finally:
            engine.shards.release()
        return
    yield Engine(args.index, chat_model=chat_model_from_env())


def _search(args: argparse.Namespace) -> int:
    from core.serialize import hits_json
    from ui.render import document_texts

    questions = _checked(_questions(args))
    with _engine(args) as engine:
        for qid, question in questions:
            snapshot = engine.snapshot()
            hits = engine.search(question, args.k, snapshot=snapshot)
            if args.batch or args.json:
                out = {"hits": hits_json(hits)}
                print(json.dumps({"id": qid, **out} if args.batch else out, ensure_ascii=False))
            else:
                texts = document_texts(snapshot.index.documents, hits)
                print(_format_hits(hits, texts) or "No passage matches.")
    return 0


def _ask(args: argparse.Namespace) -> int:
    from core.serialize import answer_json

    questions = _checked(_questions(args))
    with _engine(args) as engine:
        for qid, question in questions:
            answer = engine.ask(question, args.k)
            if args.batch or args.json:
                out = answer_json(answer)
                print(json.dumps({"id": qid, **out} if args.batch else out, ensure_ascii=False))
            else:
                print(format_answer(answer))
    return 0


def _format_hits(hits: Any, texts: dict[str, str] | None = None) -> str:
    """Each passage's place and scores, then the sentence that best matches (given the
    documents' texts) or the start of the passage."""
    from ui.render import place, sentence_text

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
    from ui.render import place

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
    from core.config import load_settings
    from core.embedder import default_embedder
    from eval.datasets import SEED_QUESTIONS
    from eval.report import REPORTS, format_table, report_json, write_report
    from eval.suite import evaluate_beir, evaluate_questions, refuse_tuning_on_test, tune_beir, tune_questions
    from eval.tune import save_if_better

    if args.beir:
        args.split = args.split or "test"
    if args.tune and args.beir:
        refuse_tuning_on_test(args.split)  # before the eval, not after it
    questions = args.questions or SEED_QUESTIONS
    if args.calibrate_also and not args.calibrate:
        raise CiteError("--calibrate-also adds questions to --calibrate; add --calibrate.")
    if args.calibrate:  # refused before the eval runs, not after it
        from eval.calibrate import check_both_kinds
        from eval.datasets import load_questions

        if args.beir:
            raise CiteError("--calibrate needs answerable and unanswerable questions (--questions or the seed set).")
        from eval.suite import questions_in_split

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
        from eval.calibrate import calibration
        from retriever.engine import Engine

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


def _serve(args: argparse.Namespace) -> int:
    limit_malloc_arenas()  # first: it binds only threads that have not yet allocated
    from ui.web import serve

    if not _is_loopback(args.host) and not args.expose:
        raise CiteError(
            f"Refusing to listen on {args.host}: anyone who can reach it could read your documents. "
            "Add --expose (and --password) if that is what you want."
        )
    from eval.report import REPORTS

    if args.ray:  # shard actors (and Serve replicas) on a Ray cluster
        from ui.ray_serve import serving_on

        serve = serving_on(args.ray, args.shards, args.replicas)
    serve(
        args.index, host=args.host, port=args.port, password=args.password or None, reports=args.report_dir or REPORTS
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


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
