"""`cite eval`: the seed questions (or the user's own) and BEIR folders, end to end.

Each eval indexes what it needs (incrementally, so a re-run costs only the queries), runs
dense, BM25 and hybrid retrieval, and for a question file also asks every question to see
when the system answers and when it abstains.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cite.core.config import Settings
from cite.core.embedder import Embedder
from cite.core.errors import CiteError
from cite.core.store import StoredIndex, read_index
from cite.core.types import Citation
from cite.eval.datasets import SEED_QUESTIONS, Question, evidence_qrels, load_beir, load_questions, squash
from cite.eval.metrics import Qrels, first_relevant_rank
from cite.eval.runner import MethodResult, evaluate_methods
from cite.eval.tune import Tuning, tune_search
from cite.indexer.build import build_index
from cite.indexer.loaders import load_paths, source_of
from cite.retriever.answer_type import expected_type
from cite.retriever.engine import Engine

SEED_MEASURES = ("hit@1", "hit@5", "mrr@10", "ndcg@10")
BEIR_MEASURES = ("ndcg@10", "recall@100", "mrr@10")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Abstention:
    """How the answerer behaved on a group of questions: answered when it could, with quotes
    that hold the evidence on the right page, and abstained when it could not."""

    answerable: int
    answered: int  # of the answerable
    unanswerable: int
    abstained: int  # of the unanswerable
    evidence_cited: int  # answered questions whose citations contain the evidence phrase
    paged: int = 0  # answered questions whose evidence has a page
    page_right: int = 0  # of those, answers whose first citation is on that page

    @property
    def answered_rate(self) -> float:
        return self.answered / self.answerable if self.answerable else 0.0

    @property
    def abstained_rate(self) -> float:
        return self.abstained / self.unanswerable if self.unanswerable else 0.0

    @property
    def evidence_rate(self) -> float:
        """Of the answered questions."""
        return self.evidence_cited / self.answered if self.answered else 0.0

    @property
    def evidence_of_answerable(self) -> float:
        """Of all answerable questions: an abstention counts as a miss."""
        return self.evidence_cited / self.answerable if self.answerable else 0.0

    @property
    def page_rate(self) -> float:
        return self.page_right / self.paged if self.paged else 0.0


@dataclass(frozen=True)
class Outcome:
    """One question asked end to end."""

    question: Question
    answered: bool
    evidence_cited: bool
    page_right: bool | None  # None: no page to check


def tally(outcomes: list[Outcome]) -> Abstention:
    answerable = [o for o in outcomes if o.question.answerable]
    answered = [o for o in answerable if o.answered]
    paged = [o for o in answered if o.page_right is not None]
    return Abstention(
        answerable=len(answerable),
        answered=len(answered),
        unanswerable=len(outcomes) - len(answerable),
        abstained=sum(not o.answered for o in outcomes if not o.question.answerable),
        evidence_cited=sum(o.evidence_cited for o in answered),
        paged=len(paged),
        page_right=sum(bool(o.page_right) for o in paged),
    )


@dataclass(frozen=True)
class EvalReport:
    name: str
    queries: int
    documents: int
    passages: int
    index_seconds: float
    results: list[MethodResult]
    curve_metric: str
    abstention: Abstention | None = None
    notes: list[str] = field(default_factory=list)
    misses: list[Miss] = field(default_factory=list)  # default method, evidence not ranked first
    by_type: dict[str, Abstention] = field(default_factory=dict)  # the answers per kind of question


@dataclass(frozen=True)
class Miss:
    """A question whose evidence the default search did not rank first: where it did rank."""

    id: str
    question: str
    rank: int | None  # of the first passage holding the evidence; None: not in the top k


def misses(run: Mapping[str, Mapping[str, float]], qrels: Qrels, queries: Mapping[str, str]) -> list[Miss]:
    """Questions whose first relevant passage is not at rank 1, worst first."""
    found = []
    for qid, relevant in qrels.items():
        if not relevant:
            continue
        rank = first_relevant_rank(run.get(qid, {}), relevant)
        if rank != 1:
            found.append(Miss(qid, queries[qid], rank))
    return sorted(found, key=lambda m: (-(m.rank or 10**9), m.id))


def evaluate_questions(
    questions_path: Path,
    index_root: Path,
    embedder: Embedder,
    settings: Settings,
    documents: list[Path] | None = None,
    progress: Progress | None = None,
    split: str | None = None,
) -> EvalReport:
    """Retrieval and answers on a question file. With `documents`, (re)indexes them first;
    with `split`, only the questions of that split ("test": the held-out ones) count."""
    questions = questions_in_split(load_questions(questions_path), split)
    started = time.perf_counter()
    if documents:
        loaded = load_paths(documents)
        build_index(
            loaded.documents, index_root, embedder, settings.split, progress, scope={source_of(p) for p in documents}
        )
    index_seconds = time.perf_counter() - started
    index = read_index(index_root)
    answerable = [q for q in questions if q.answerable]
    notes = [
        f"{q.id}: document {q.doc} is not in the index" for q in answerable if q.doc and q.doc not in index.documents
    ]
    queries, qrels = judged_questions(questions, index)
    notes += [f"{q.id}: no passage contains its evidence" for q in answerable if not qrels[q.id]]
    results = evaluate_methods(
        index,
        embedder,
        queries,
        qrels,
        settings.search,
        SEED_MEASURES,
        curve_metric="hit",
        k=20,
    )
    outcomes = ask_all(Engine(index_root, embedder, settings), questions)
    return EvalReport(
        "seeds" if questions_path.resolve() == SEED_QUESTIONS.resolve() else questions_path.stem,
        len(questions),
        len(index.documents),
        len(index.passages),
        index_seconds,
        results,
        "hit",
        tally(outcomes),
        notes,
        misses(next(r.run for r in results if r.method == "hybrid"), qrels, queries),
        tally_by_type(outcomes),
    )


def questions_in_split(questions: list[Question], split: str | None) -> list[Question]:
    if split is None:
        return questions
    chosen = [q for q in questions if q.split == split]
    if not chosen:
        raise CiteError(f"No question is in the {split!r} split; the file's questions need a \"split\" key.")
    return chosen


def judged_questions(questions: list[Question], index: StoredIndex) -> tuple[dict[str, str], Qrels]:
    """The answerable questions as queries, and the passages holding their evidence as qrels."""
    answerable = [q for q in questions if q.answerable]
    return {q.id: q.question for q in answerable}, evidence_qrels(answerable, index.passages)


def tune_questions(
    questions_path: Path, index_root: Path, embedder: Embedder, settings: Settings, split: str | None = None
) -> Tuning:
    """Fusion weights tuned on a question file's answerable questions (MRR@10), or on one split's."""
    index = read_index(index_root)
    queries, qrels = judged_questions(questions_in_split(load_questions(questions_path), split), index)
    return tune_search(index, embedder, queries, qrels, settings.search, "mrr@10")


def refuse_tuning_on_test(split: str) -> None:
    if split == "test":
        raise CiteError("Tune on the train split (--split train), never on the test queries you report.")


def tune_beir(folder: Path, index_root: Path, embedder: Embedder, settings: Settings, split: str) -> Tuning:
    """Fusion weights tuned on a BEIR split's queries (nDCG@10); never the test split."""
    refuse_tuning_on_test(split)
    dataset = load_beir(folder, split)
    index = read_index(index_root)
    return tune_search(
        index,
        embedder,
        dataset.queries,
        dataset.qrels,
        settings.search,
        "ndcg@10",
        by_document=True,
        drop_self=dataset.drops_self,
    )


def on_page(citation: Citation | None, page: int) -> bool:
    """Whether the citation's quote is on `page` (it may run over a page break onto it)."""
    return citation is not None and citation.page is not None and citation.page <= page <= (citation.end_page or 0)


def ask_all(engine: Engine, questions: list[Question]) -> list[Outcome]:
    """Every question asked as a user would, judged against its evidence and page."""
    outcomes = []
    for question in questions:
        answer = engine.ask(question.question)
        quotes = squash(" ".join(c.quote for c in answer.citations))
        first = answer.citations[0] if answer.citations else None
        outcomes.append(
            Outcome(
                question,
                not answer.abstained,
                question.answerable and squash(question.evidence or "") in quotes,
                None if question.page is None else on_page(first, question.page),
            )
        )
    return outcomes


def question_type(question: Question) -> str:
    """The type the question file gives, else the one the answerer infers from the wording."""
    return question.type or expected_type(question.question)


def tally_by_type(outcomes: list[Outcome]) -> dict[str, Abstention]:
    groups: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        groups.setdefault(question_type(outcome.question), []).append(outcome)
    return {name: tally(group) for name, group in sorted(groups.items())}


def evaluate_beir(
    folder: Path,
    index_root: Path,
    embedder: Embedder,
    settings: Settings,
    split: str = "test",
    progress: Progress | None = None,
) -> EvalReport:
    """nDCG@10 and Recall@100 on a BEIR folder; a document scores by its best passage."""
    dataset = load_beir(folder, split)
    started = time.perf_counter()
    loaded = load_paths([dataset.corpus])
    build_index(loaded.documents, index_root, embedder, settings.split, progress)
    index_seconds = time.perf_counter() - started
    index = read_index(index_root)
    results = evaluate_methods(
        index,
        embedder,
        dataset.queries,
        dataset.qrels,
        settings.search,
        BEIR_MEASURES,
        k=100,
        by_document=True,
        drop_self=dataset.drops_self,
    )
    notes = ["results equal to the query id dropped (as BEIR does for ArguAna)"] if dataset.drops_self else []
    return EvalReport(
        f"{dataset.name}-{split}",
        len(dataset.queries),
        len(index.documents),
        len(index.passages),
        index_seconds,
        results,
        "recall",
        None,
        notes,
    )
