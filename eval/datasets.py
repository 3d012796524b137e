"""Eval sets: the hand-written seed questions, and BEIR folders (corpus, queries, qrels)."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cite.core.errors import CiteError
from cite.core.jsonl import read_jsonl
from cite.core.types import Passage

SEED_QUESTIONS = Path(__file__).resolve().parents[1] / "seeds" / "questions.jsonl"


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    doc: str | None = None  # None: the documents do not answer it
    evidence: str | None = None  # an exact phrase of the answer in `doc`
    kind: str = ""  # "lexical" or "paraphrased"
    type: str = ""  # the kind of answer asked for (who, when, ...); "" when the file does not say
    page: int | None = None  # the physical page holding the evidence, for paged documents
    split: str = ""  # "train" or "test": fit on one, report the other
    corpus: str = ""  # the collection it asks about, for per-corpus and leave-one-corpus-out figures

    @property
    def answerable(self) -> bool:
        return self.evidence is not None


def squash(text: str) -> str:
    """Lowercase alphanumerics only: evidence matches across de-hyphenation and line breaks."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


def load_questions(path: Path) -> list[Question]:
    """Reads `{"id", "question", "doc", "evidence"}` lines, with optional `kind`, `type`, `page`,
    `split` and `corpus`; other keys are ignored."""
    shape = '{"id", "question", "doc", "evidence"}'
    try:
        rows = list(read_jsonl(path))
    except OSError as error:
        raise CiteError(f"Cannot read questions from {path}: {error.strerror}.") from None
    except ValueError as error:
        raise CiteError(f"{error}: each line must be a {shape} object.") from None
    questions = []
    for number, row in rows:
        try:
            page = row.get("page")
            questions.append(
                Question(
                    str(row["id"]),
                    str(row["question"]),
                    row.get("doc"),
                    row.get("evidence"),
                    str(row.get("kind") or ""),
                    str(row.get("type") or ""),
                    None if page is None else int(page),
                    str(row.get("split") or ""),
                    str(row.get("corpus") or ""),
                )
            )
        except (KeyError, TypeError, ValueError):
            raise CiteError(f"{path}:{number} is not a {shape} line.") from None
    if not questions:
        raise CiteError(f"{path} holds no questions.")
    return questions


def evidence_qrels(questions: Iterable[Question], passages: Iterable[Passage]) -> dict[str, dict[str, int]]:
    """A passage is relevant to a question when its text contains the evidence phrase
    (and it comes from the question's document, when one is named)."""
    passages = list(passages)
    squashed = [squash(p.text) for p in passages]
    qrels: dict[str, dict[str, int]] = {}
    for question in questions:
        if not question.answerable:
            continue
        needle = squash(question.evidence or "")
        qrels[question.id] = {
            p.id: 1
            for p, text in zip(passages, squashed, strict=True)
            if needle in text and (question.doc is None or p.doc == question.doc)
        }
    return qrels


@dataclass(frozen=True)
class BeirSet:
    name: str
    corpus: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @property
    def drops_self(self) -> bool:
        """ArguAna's queries are themselves corpus documents: BEIR drops those self-matches."""
        return self.name.lower() == "arguana"


def load_beir(folder: Path, split: str = "test") -> BeirSet:
    """A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv. Only judged queries are kept."""
    corpus, qrels_path = folder / "corpus.jsonl", folder / "qrels" / f"{split}.tsv"
    for needed in (corpus, folder / "queries.jsonl", qrels_path):
        if not needed.is_file():
            raise CiteError(f"{folder} is not a BEIR folder: {needed.name} is missing.")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    queries = {row["_id"]: row["text"] for _, row in read_jsonl(folder / "queries.jsonl") if row["_id"] in qrels}
    return BeirSet(folder.resolve().name, corpus, queries, qrels)
