"""The real-documents set as one folder per manual, so each is indexed alone, as a user indexes
one manual (and as the maintainers' hidden sets are): a near-miss about one manual is then not
answered by another, and a manual's questions compete only with its own passages.

    python -m cite.eval.realdocs.corpora .cite/realdocs .cite/realdocs-corpora   # hard links, by corpus
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Each corpus (the questions' `corpus`) and the files it is: a path, or a folder ending in "/".
CORPORA = {
    "gnuplot": ("pdf/gnuplot.pdf",),
    "amsmath": ("pdf/amsldoc.pdf",),
    "postgresql": ("postgresql/",),
    "debref": ("pdf/debian-reference.pdf",),
    "bash": ("pdf/bashref.pdf",),
    "handbook": ("handbook/",),
    "faq": ("epub/debian-faq.epub",),
    "maxima": ("epub/maxima-manual.epub",),
    "git": ("docx/git-user-manual.docx",),
    "gnucash": ("odt/gnucash-guide.odt",),
}


def corpus_of(doc: str) -> str:
    """The corpus a corpus file (a path relative to DEST) belongs to."""
    for corpus, files in CORPORA.items():
        if any(doc == f or (f.endswith("/") and doc.startswith(f)) for f in files):
            return corpus
    raise KeyError(f"{doc} is in no corpus of CORPORA")


def lay_out(dest: Path, out: Path, docs: list[str]) -> dict[str, int]:
    """Hard-links (copies, across file systems) each file to out/<corpus>/<its path>, so that
    an index of out/<corpus> names documents as the questions do. Returns files per corpus."""
    counts: dict[str, int] = {}
    for doc in docs:
        target = out / corpus_of(doc) / doc
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(dest / doc, target)
        except OSError:
            target.write_bytes((dest / doc).read_bytes())
        counts[corpus_of(doc)] = counts.get(corpus_of(doc), 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    from cite.eval.realdocs.check import manifest_docs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="the folder setup.sh filled")
    parser.add_argument("out", type=Path, help="where the per-corpus folders go")
    args = parser.parse_args(argv)
    for corpus, count in lay_out(args.dest, args.out, manifest_docs()).items():
        print(f"{args.out / corpus}: {count} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
