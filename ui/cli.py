"""The `cite` command: parses arguments and delegates, to `ui.commands` (index, verify, eval, mcp,
serve) and `ui.query_commands` (search, ask). Heavy imports happen per subcommand.

Exit status: 0 done; 1 refused or failed (a one-line `cite: error:` on stderr); 3 a --batch run
in which some lines were refused (each has its error line) and the others answered; 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cite.core.config import DEFAULT_K
from cite.core.errors import CiteError
from cite.core.store import DEFAULT_INDEX
from cite.ui import commands, query_commands
from cite.ui.query_commands import BATCH_REFUSED


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
    index.set_defaults(run=commands.run_index)

    for name, run, help_text, what in (
        (
            "search",
            query_commands.run_search,
            "rank passages for a question (citation lookup)",
            "the question, or a passage to find",
        ),
        ("ask", query_commands.run_ask, "answer a question with citations", "the question"),
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
        command.add_argument(
            "--k", type=_k, default=DEFAULT_K, help=f"passages to return, 1 to 100 (default {DEFAULT_K})"
        )
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
    evaluate.set_defaults(run=commands.run_eval)

    verify = sub.add_parser("verify", help="check every index file against its SHA-256 in the manifest")
    _index_option(verify)
    verify.set_defaults(run=commands.run_verify)

    mcp = sub.add_parser("mcp", help="serve search, ask and read to an MCP client (Claude Desktop, Cursor) over stdio")
    _index_option(mcp)
    mcp.set_defaults(run=commands.run_mcp)

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
    serve.set_defaults(run=commands.run_serve)
    return parser


def _watch_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--watch", action="store_true", help=what)
    parser.add_argument("--poll", action="store_true", help="with --watch: poll the folders (for network file systems)")


def _index_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX, help=f"index folder (default {DEFAULT_INDEX})")


def _report_dir_option(parser: argparse.ArgumentParser, whose: str = "the") -> None:
    """--report-dir; None stands for eval.report.REPORTS (read there, so parsing imports nothing heavy)."""
    parser.add_argument(
        "--report-dir", type=Path, default=None, help=f"where {whose} Markdown + PNG reports go (default eval/reports)"
    )


def _k(text: str) -> int:
    """--k's parser: validate.k's range and message, as argparse's own error."""
    from cite.ui import validate

    try:
        return validate.k(int(text) if text.strip().lstrip("+-").isdigit() else text)
    except validate.BadInput as error:
        raise argparse.ArgumentTypeError(str(error)) from None


if __name__ == "__main__":
    sys.exit(main())
