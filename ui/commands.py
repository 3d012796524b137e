"""The `cite` subcommands that build, check, measure and serve an index: index (and --watch),
verify, eval, mcp and serve. Each takes the parsed arguments and returns the exit status;
heavy imports happen inside each, so parsing the command line loads no model."""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cite.core.errors import CiteError, DocumentError, IndexBusy
from cite.core.store import DEFAULT_INDEX, current_version

PROJECT_SEEDS = Path(__file__).resolve().parents[1] / "seeds"
EVAL_INDEXES = Path(".cite/eval")
SEED_EVAL_INDEX = EVAL_INDEXES / "seeds"  # the seed set's own index: evaluating never touches the user's


def default_seeds() -> Path:
    """`seeds/` here if there is one, else the sample documents shipped with cite."""
    local = Path("seeds")
    return local if local.is_dir() else PROJECT_SEEDS


def run_index(args: argparse.Namespace) -> int:
    """`cite index [PATH...]`: indexes what changed and says so; 1 when a file named on the command line
    could not be read."""
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
        run_index(again)
        return ""

    watcher = FolderSync(folders, sync, poll=args.poll)

    def say_watching() -> None:
        print(f"cite: {watcher.state().describe()}; Ctrl-C to stop", file=sys.stderr, flush=True)

    try:
        watcher.run_forever(say_watching)
    except KeyboardInterrupt:
        pass
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """`cite verify`: every index file against its SHA-256 in the manifest."""
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


def _progress_printer() -> Callable[[int, int], None] | None:
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


def run_eval(args: argparse.Namespace) -> int:
    """`cite eval`: retrieval accuracy on question files or a BEIR set, then --tune and --calibrate."""
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


def run_mcp(args: argparse.Namespace) -> int:
    """`cite mcp`: search, ask and read for an MCP client over stdio."""
    from cite.ui.mcp_server import run_stdio

    run_stdio(args.index)
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """`cite serve`: the chat UI and its APIs, on loopback unless --expose."""
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
