"""The two question sets over real documents, and which files make each corpus.

- `realdocs`: the development set. Settings are chosen on it, always leave-one-corpus-out.
- `sealed`: four more manuals whose questions were written after every setting was fixed and
  are only ever scored, never tuned on: the stand-in for documents nobody on the project has seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EVAL = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class QuestionSet:
    """A question file and the corpus files it is asked of, grouped into corpora (one index each)."""

    name: str
    folder: Path  # holds questions.jsonl and corpus.tsv
    corpora: dict[str, tuple[str, ...]]  # corpus -> its files: a path, or a folder ending in "/"
    derived: bool  # also has derive.py's books (made from HTML with pandoc), besides corpus.tsv's copies

    @property
    def questions(self) -> Path:
        return self.folder / "questions.jsonl"

    @property
    def manifest(self) -> Path:
        return self.folder / "corpus.tsv"

    def corpus_of(self, doc: str) -> str:
        """The corpus a corpus file (a path relative to DEST) belongs to."""
        for corpus, files in self.corpora.items():
            if any(doc == f or (f.endswith("/") and doc.startswith(f)) for f in files):
                return corpus
        raise KeyError(f"{doc} is in no corpus of the {self.name} set")


REALDOCS = QuestionSet(
    "realdocs",
    EVAL / "realdocs",
    {
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
    },
    derived=True,
)
SEALED = QuestionSet(
    "sealed",
    EVAL / "sealed",
    {
        "zsh": ("pdf/zsh.pdf",),
        "pytutorial": ("pytutorial/",),
        "livemanual": ("epub/live-manual.en.epub",),
        "ubuntupkg": ("epub/ubuntu-packaging-guide.epub",),
    },
    derived=False,
)
SETS = {s.name: s for s in (REALDOCS, SEALED)}
