"""Checks a real-documents question set against the corpus that setup.sh copies.

    bash eval/realdocs/setup.sh .cite/realdocs
    python -m eval.realdocs.check .cite/realdocs            # exit 1 on any miss
    python -m eval.realdocs.check .cite/realdocs --dump DIR # also write the text, one .txt per PDF page / HTML file
    python -m eval.realdocs.check .cite/sealed --set sealed # the sealed set (eval/sealed)

Every answerable question's evidence must occur, squashed to [0-9a-z], in its document's text:
for a PDF on the named 1-based physical page, in the text of two extractors (pypdfium2 and
pypdf, so the set does not lean on one library's reading order); for HTML in BeautifulSoup's
text. It must occur nowhere else in the corpus (no other page, no other file), so that the
named page is the one right page. The set must also keep the proportions it promises
(`QuestionSet.required`, in sets.py). It prints the counts per split, kind and type.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from cite.eval.realdocs.sets import REALDOCS, SETS, QuestionSet

FIELDS = ("id", "question", "corpus", "doc", "evidence", "page", "kind", "type", "split")
KINDS = ("lexical", "paraphrased")
TYPES = ("who", "when", "where", "how-many", "why", "what", "how", "yes-no")
SPLITS = ("train", "test")
EVIDENCE_WORDS = (5, 15)
# A paraphrased question repeats less than this share of its evidence's content words.
PARAPHRASE_OVERLAP = 0.4
STOPWORDS = frozenset(
    "a an the of to in on for and or is are be do does i my me it its how what which who when where why can with by as"
    " at from that this if will should not no into so than then there their them they you your was were has have had"
    " any all each use using used get set".split()
)


def squash(text: str) -> str:
    """Lowercase letters and digits only (ligatures such as 'ﬁ' unfolded first)."""
    return re.sub(r"[^0-9a-z]", "", unicodedata.normalize("NFKC", text).lower())


@dataclass(frozen=True)
class Question:
    """One line of questions.jsonl; `doc` None means the corpus does not answer it."""

    id: str
    question: str
    corpus: str  # the manual it is about ("offtopic" for questions about none of them)
    doc: str | None
    evidence: str | None
    page: int | None
    kind: str
    type: str
    split: str

    @property
    def answerable(self) -> bool:
        return self.doc is not None


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOPWORDS and len(w) > 1}


def overlap(question: Question) -> float:
    """Share of the evidence's content words that the question repeats (0 for unanswerable)."""
    evidence = content_words(question.evidence or "")
    return len(content_words(question.question) & evidence) / len(evidence) if evidence else 0.0


def read_questions(path: Path = REALDOCS.questions) -> list[Question]:
    """The question set; raises ValueError naming the line of a malformed record."""
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        if set(record) != set(FIELDS):
            raise ValueError(f"{path.name}:{number}: fields {sorted(record)}, expected {sorted(FIELDS)}")
        questions.append(Question(**record))
    return questions


def manifest_docs(qset: QuestionSet = REALDOCS) -> list[str]:
    """The corpus files, relative to DEST: corpus.tsv's copies, then derive.py's books."""
    from cite.eval.realdocs.derive import BOOKS, reading_order

    rows = [line.split("\t") for line in qset.manifest.read_text(encoding="utf-8").splitlines()]
    docs = [row[2] for row in rows if row and not row[0].startswith("#") and len(row) == 3]
    for book in BOOKS if qset.derived else ():
        pages = (
            [book.target + page.name for page in reading_order(book)] if book.target.endswith("/") else [book.target]
        )
        docs += pages
    return docs


@cache
def pdf_pages_pdfium(path: Path) -> tuple[str, ...]:
    import pypdfium2

    pdf = pypdfium2.PdfDocument(str(path))
    try:
        return tuple(page.get_textpage().get_text_range() for page in pdf)
    finally:
        pdf.close()


@cache
def pdf_pages_pypdf(path: Path) -> tuple[str, ...]:
    from pypdf import PdfReader

    return tuple(page.extract_text() or "" for page in PdfReader(str(path)).pages)


@cache
def html_text(path: Path) -> str:
    return soup_text(path.read_text(encoding="utf-8"))


def soup_text(markup: str) -> str:
    """BeautifulSoup's text of an HTML or XHTML page, scripts and styles left out."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    return soup.get_text(" ")


@cache
def book_text(path: Path) -> str:
    """An EPUB, DOCX or ODT book as pandoc reads it: a reader that is not cite's."""
    import subprocess

    done = subprocess.run(["pandoc", "-t", "plain", str(path)], capture_output=True, text=True)
    if done.returncode and path.suffix == ".epub":
        return epub_text(path)  # pandoc refuses spine hrefs with #fragments (SiSU's EPUBs)
    done.check_returncode()
    return done.stdout


def epub_text(path: Path) -> str:
    """An EPUB's spine files, each once and in order, as BeautifulSoup reads them."""
    import posixpath
    import zipfile
    from xml.etree import ElementTree

    with zipfile.ZipFile(path) as book:
        container = ElementTree.fromstring(book.read("META-INF/container.xml"))
        opf_path = next(e.get("full-path") for e in container.iter() if e.tag.endswith("rootfile"))
        opf = ElementTree.fromstring(book.read(opf_path))
        hrefs = {e.get("id"): e.get("href") for e in opf.iter() if e.tag.endswith("}item")}
        spine = [e.get("idref") for e in opf.iter() if e.tag.endswith("}itemref") and e.get("linear") != "no"]
        files = dict.fromkeys(posixpath.join(posixpath.dirname(opf_path), hrefs[i].split("#")[0]) for i in spine)
        return "\n".join(soup_text(book.read(name).decode("utf-8")) for name in files)


def document_text(path: Path) -> str:
    """The whole text of one file that has no pages (HTML, EPUB, DOCX, ODT)."""
    return html_text(path) if path.suffix == ".html" else book_text(path)


def document_texts(root: Path, doc: str) -> list[str]:
    """One text per PDF page (pypdfium2's reading), or the one text of any other file."""
    path = root / doc
    return list(pdf_pages_pdfium(path)) if path.suffix == ".pdf" else [document_text(path)]


def problems(question: Question, root: Path, docs: set[str]) -> list[str]:
    """What is wrong with one question; empty when it holds."""
    found = []
    if question.kind not in KINDS or question.type not in TYPES or question.split not in SPLITS:
        labels = f"{question.kind}/{question.type}/{question.split}"
        found.append(f"kind/type/split {labels} not in {KINDS}/{TYPES}/{SPLITS}")
    if not question.answerable:
        if question.evidence is not None or question.page is not None:
            found.append("unanswerable (doc null) but evidence or page set")
        return found
    if question.doc not in docs:
        return [*found, f"doc {question.doc} not in corpus.tsv"]
    if not question.evidence:
        return [*found, "answerable but no evidence"]
    words = len(question.evidence.split())
    if not EVIDENCE_WORDS[0] <= words <= EVIDENCE_WORDS[1]:
        found.append(f"evidence has {words} words, expected {EVIDENCE_WORDS[0]}-{EVIDENCE_WORDS[1]}")
    if question.kind == "paraphrased" and overlap(question) >= PARAPHRASE_OVERLAP:
        found.append(f"marked paraphrased but repeats {overlap(question):.0%} of the evidence's content words")
    needle, path = squash(question.evidence), root / question.doc
    if path.suffix == ".pdf":
        if not isinstance(question.page, int):
            return [*found, "PDF question without a page"]
        for name, pages in (("pypdfium2", pdf_pages_pdfium(path)), ("pypdf", pdf_pages_pypdf(path))):
            if not 1 <= question.page <= len(pages):
                return [*found, f"page {question.page} outside 1-{len(pages)}"]
            if needle not in squash(pages[question.page - 1]):
                on = [n for n, text in enumerate(pages, 1) if needle in squash(text)]
                found.append(f"{name}: evidence not on p. {question.page}" + (f" (it is on {on})" if on else ""))
    else:
        if question.page is not None:
            found.append("question on a file without pages has a page")
        if needle not in squash(document_text(path)):
            found.append("evidence not in the document")
    return found


def corpus_units(root: Path, docs: list[str]) -> dict[tuple[str, int | None], str]:
    """Squashed text of every unit a citation can name: (doc, page) for PDF pages, (doc, None) for HTML."""
    units = {}
    for doc in docs:
        texts = document_texts(root, doc)
        for number, text in enumerate(texts, 1):
            units[doc, number if doc.endswith(".pdf") else None] = squash(text)
    return units


def elsewhere(question: Question, units: dict[tuple[str, int | None], str]) -> list[str]:
    """Other pages or files that also hold the question's evidence (which would make its page ambiguous)."""
    if not question.answerable or not question.evidence:
        return []
    needle, own = squash(question.evidence), (question.doc, question.page)
    return [
        f"{doc}" + (f" p. {page}" if page else "")
        for (doc, page), text in units.items()
        if (doc, page) != own and needle in text
    ]


def shortfalls(questions: list[Question], required: Mapping[str, Any]) -> list[str]:
    """Where the set falls short of what it promises (`QuestionSet.required`)."""
    found = []
    unanswerable = sum(not q.answerable for q in questions)
    paraphrased = sum(q.kind == "paraphrased" for q in questions if q.answerable)
    answerable = len(questions) - unanswerable
    train = sum(q.split == "train" for q in questions)
    corpora = {q.corpus for q in questions if q.answerable}
    if len(corpora) < required["corpora"]:
        found.append(f"{len(corpora)} corpora, at least {required['corpora']} required")
    if len(questions) < required["questions"]:
        found.append(f"{len(questions)} questions, at least {required['questions']} required")
    if unanswerable < required["unanswerable"]:
        found.append(f"{unanswerable} unanswerable, at least {required['unanswerable']} required")
    if answerable and paraphrased / answerable < required["paraphrased_share"]:
        found.append(f"{paraphrased}/{answerable} answerable questions paraphrased, at least a third required")
    low, high = required["split_share"]
    if questions and not low <= train / len(questions) <= high:
        found.append(f"{train}/{len(questions)} in train, expected {low:.0%}-{high:.0%}")
    return found


def counts(questions: list[Question]) -> str:
    """Counts per split, then per split x kind and split x type, as a small text table."""
    lines = []
    for label, key in (
        ("answerable", lambda q: "answerable" if q.answerable else "unanswerable"),
        ("kind", lambda q: q.kind),
        ("type", lambda q: q.type),
        ("corpus", lambda q: q.corpus),
    ):
        table = collections.Counter((key(q), q.split) for q in questions)
        values = sorted({value for value, _ in table})
        lines.append(f"{label:<24}" + "".join(f"{split:>7}" for split in SPLITS) + f"{'all':>7}")
        for value in values:
            row = [table[value, split] for split in SPLITS]
            lines.append(f"  {value:<22}" + "".join(f"{n:>7}" for n in row) + f"{sum(row):>7}")
    for kind in KINDS:
        shares = [overlap(q) for q in questions if q.answerable and q.kind == kind]
        if shares:
            lines.append(f"mean word overlap, {kind}: {sum(shares) / len(shares):.2f} ({len(shares)} answerable)")
    by_split = collections.Counter(q.split for q in questions)
    lines.append(f"{'total':<24}" + "".join(f"{by_split[s]:>7}" for s in SPLITS) + f"{len(questions):>7}")
    return "\n".join(lines)


def dump(root: Path, out: Path, docs: list[str]) -> int:
    """Writes the corpus text that the questions are checked on: one .txt per PDF page
    (`pdf/gnuplot.pdf.p0012.txt`) and one per HTML file; returns how many files."""
    written = 0
    for doc in docs:
        texts = document_texts(root, doc)
        for number, text in enumerate(texts, 1):
            name = f"{doc}.p{number:04d}.txt" if doc.endswith(".pdf") else f"{doc}.txt"
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the folder setup.sh filled (e.g. .cite/realdocs)")
    parser.add_argument("--set", choices=sorted(SETS), default=REALDOCS.name, help="which question set")
    parser.add_argument("--questions", type=Path, help="another question file for the set's corpus")
    parser.add_argument("--dump", type=Path, help="also write the extracted text here")
    args = parser.parse_args(argv)
    qset = SETS[args.set]
    docs = manifest_docs(qset)
    absent = [doc for doc in docs if not (args.root / doc).is_file()]
    if absent:
        print(
            f"{args.root}: {len(absent)} corpus files missing"
            f" (run: bash eval/realdocs/setup.sh {args.root} {qset.folder.name})",
            file=sys.stderr,
        )
        return 2
    questions = read_questions(args.questions or qset.questions)
    misses = 0
    duplicate = [i for i, n in collections.Counter(q.id for q in questions).items() if n > 1]
    for qid in duplicate:
        print(f"{qid}: id used more than once")
        misses += 1
    texts = collections.Counter(q.question.strip().lower() for q in questions)
    for text in (t for t, n in texts.items() if n > 1):
        print(f"question asked twice: {text}")
        misses += 1
    units = corpus_units(args.root, docs)
    for question in questions:
        found = problems(question, args.root, set(docs))
        if not found and (others := elsewhere(question, units)):
            found = [f"evidence also in {', '.join(others)}: pick a phrase found only where the question points"]
        for problem in found:
            print(f"{question.id}: {problem}")
            misses += 1
    for problem in shortfalls(questions, qset.required):
        print(f"set: {problem}")
        misses += 1
    print(counts(questions))
    pdf_pages = sum(len(pdf_pages_pdfium(args.root / d)) for d in docs if d.endswith(".pdf"))
    html_files = sum(1 for d in docs if d.endswith(".html"))
    print(f"corpus: {pdf_pages} PDF pages, {html_files} HTML files")
    if args.dump:
        print(f"{args.dump}: {dump(args.root, args.dump, docs)} text files")
    if misses:
        print(f"FAIL: {misses} problems", file=sys.stderr)
        return 1
    print("OK: every evidence phrase found where its question says")
    return 0


if __name__ == "__main__":
    sys.exit(main())
