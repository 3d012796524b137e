"""A real-documents set as one folder per manual, so each is indexed alone, as a user indexes
one manual (and as the maintainers' hidden sets are): a near-miss about one manual is then not
answered by another, and a manual's questions compete only with its own passages.

    python -m cite.eval.realdocs.corpora .cite/realdocs .cite/realdocs-corpora   # hard links, by corpus
    python -m cite.eval.realdocs.corpora .cite/sealed .cite/sealed-corpora --set sealed
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cite.eval.realdocs.sets import REALDOCS, SETS, QuestionSet


def lay_out(dest: Path, out: Path, docs: list[str], qset: QuestionSet = REALDOCS) -> dict[str, int]:
    """Hard-links (copies, across file systems) each file to out/<corpus>/<its path>, so that
    an index of out/<corpus> names documents as the questions do. Returns files per corpus."""
    counts: dict[str, int] = {}
    for doc in docs:
        corpus = qset.corpus_of(doc)
        target = out / corpus / doc
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(dest / doc, target)
        except OSError:
            target.write_bytes((dest / doc).read_bytes())
        counts[corpus] = counts.get(corpus, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    from cite.eval.realdocs.check import manifest_docs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="the folder setup.sh filled")
    parser.add_argument("out", type=Path, help="where the per-corpus folders go")
    parser.add_argument("--set", choices=sorted(SETS), default=REALDOCS.name, help="which question set")
    args = parser.parse_args(argv)
    qset = SETS[args.set]
    for corpus, count in lay_out(args.dest, args.out, manifest_docs(qset), qset).items():
        print(f"{args.out / corpus}: {count} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
