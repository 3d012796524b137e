"""Leave-one-corpus-out: every setting chosen on all corpora but one, scored on the one left out.

    python -m cite.eval.loco --indexes .cite/realdocs-index [--questions FILE] [--out FILE]
    python -m cite.eval.loco --indexes .cite/sealed-index --questions eval/sealed/questions.jsonl --defaults-only

`--indexes` holds one index per corpus, named by it (`make eval-realdocs` builds them): each
manual is indexed alone, as a user indexes one, and its questions are asked of its own index.
Off-topic questions (corpus "offtopic") are asked of every one.

A setting that wins on the documents it was chosen on may not win on documents nobody tuned on.
So for each corpus of the question file (its `corpus` field), the fusion weights and BM25's k1,
the answer-sentence weights and the abstention rule are chosen on the other corpora's questions
(each corpus weighs the same), then scored on that corpus's questions. The report gives each
corpus's held-out figures beside today's defaults:

- retrieval: R@1, R@5, MRR@10 of the first passage that holds the evidence phrase;
- answers: the share of answerable questions answered with a quote that holds the evidence,
  answered at all, and unanswerable questions refused (all, and the near-misses alone), and
  how long the quotes are.

A held-out corpus's questions are never used to choose anything. Only the questions are
embedded, once; candidates are scored once per k1 and fused per setting.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from cite.core.config import AnswerSettings, SearchSettings
from cite.core.embedder import default_embedder
from cite.eval.calibrate import fit, probabilities
from cite.eval.datasets import Question, evidence_qrels, load_questions, squash
from cite.eval.tune import describe, grid
from cite.retriever.answer import evidence_for, extractive_answer, rank_sentences
from cite.retriever.engine import Engine
from cite.retriever.question import ParsedQuestion
from cite.retriever.rerank import TokenReranker
from cite.retriever.search import DenseSearcher, HybridSearcher, LexicalSearcher

REALDOCS_QUESTIONS = Path(__file__).resolve().parent / "realdocs" / "questions.jsonl"
K = 10
K1S = (0.45, 0.9, 1.2)
# Token re-ranking weights to choose among with each fusion point (retriever/rerank.py; 0: off).
TOKEN_WEIGHTS = (0.0, 0.4, 0.6, 0.8)
# How answers choose their sentences, to choose among: today's, then single steps away from it
# in the sentence weights (cosine, question words, answer type, first passage, 1/rank), and in
# how many sentences are quoted (at most `max_sentences`, each scoring `keep_ratio` of the best).
# Not more than 4: quoting more always finds the evidence more often (5 won held out too), and
# an answer is then a passage to read, not an answer. Then when a quote goes on into its next
# sentence (`continue_ratio`; 9.0: never). Not below 0.7, for the same reason: 0.6 won held out
# too, and always going on finds the evidence most often (answers 40% longer than at 0.7).
ANSWER_VARIANTS: tuple[dict, ...] = (
    {},
    {"sentence_weights": (1.0, 0.0, 0.0, 0.0, 0.0)},
    {"sentence_weights": (0.75, 0.25, 0.0, 0.0, 0.075)},
    {"sentence_weights": (0.75, 0.25, 0.2, 0.0, 0.075)},
    {"sentence_weights": (0.6, 0.4, 0.1, 0.0, 0.075)},
    {"sentence_weights": (0.9, 0.1, 0.1, 0.0, 0.075)},
    {"sentence_weights": (0.75, 0.25, 0.1, 0.1, 0.075)},
    {"sentence_weights": (0.75, 0.25, 0.1, 0.0, 0.15)},
    {"max_sentences": 3, "keep_ratio": 0.8},
    {"max_sentences": 3},
    {"keep_ratio": 0.6},
    {"keep_ratio": 0.8},
    {"continue_ratio": 9.0},
    {"continue_ratio": 0.8},
)


@dataclass(frozen=True)
class Held:
    """One corpus's held-out figures under its defaults and under the settings chosen without it."""

    corpus: str
    answerable: int
    unanswerable: int
    near_misses: int  # of the unanswerable: about the corpus, not off-topic
    default: dict[str, float]
    chosen: dict[str, float]
    choice: dict[str, str]


def macro_choice(table: np.ndarray, corpora: Sequence[str], left_out: str) -> int:
    """The row (setting) with the best mean over the corpora other than `left_out`, each corpus
    weighing the same; ties go to the lowest row (row 0: today's default)."""
    names = sorted({c for c in corpora if c != left_out})
    labels = np.asarray(corpora)
    means = np.mean([table[:, labels == name].mean(axis=1) for name in names], axis=0)
    return int(np.flatnonzero(means == means.max())[0])


def first_relevant(hits: Sequence, relevant: Mapping[str, int]) -> int | None:
    return next((rank for rank, hit in enumerate(hits, 1) if hit.passage.id in relevant), None)


def retrieval_table(
    engine: Engine, questions: Sequence[Question], vectors: Mapping[str, np.ndarray], base: SearchSettings
) -> tuple[list[SearchSettings], np.ndarray]:
    """Every (k1, fusion weights, token weight) setting's first-relevant rank for every
    answerable question (0: not in the top K). Row 0 is `base`."""
    index, embedder = engine.index, engine.embedder
    qrels = evidence_qrels(questions, index.passages)
    points, rows = [], []
    reranker = TokenReranker(embedder)  # one for every k1: its token matches are kept
    for k1 in (base.bm25_k1, *[k for k in K1S if k != base.bm25_k1]):
        at_k1 = replace(base, bm25_k1=k1)
        searcher = HybridSearcher(DenseSearcher(index, embedder), LexicalSearcher(index), at_k1)
        searcher.reranker = reranker
        found = [searcher.candidates(q.question, vectors[q.id], K) for q in questions]
        for fused in grid(at_k1):
            for point in [fused] + [replace(fused, token_weight=w) for w in TOKEN_WEIGHTS if w != fused.token_weight]:
                hits = [searcher.fuse(f, K, point) for f in found]
                points.append(point)
                rows.append([first_relevant(h, qrels[q.id]) or 0 for h, q in zip(hits, questions, strict=True)])
    return points, np.asarray(rows)


def retrieval_scores(ranks: np.ndarray) -> dict[str, np.ndarray]:
    found = ranks > 0
    return {
        "R@1": (ranks == 1).astype(float),
        "R@5": (found & (ranks <= 5)).astype(float),
        "MRR@10": np.where(found, 1.0 / np.maximum(ranks, 1), 0.0),
    }


@dataclass(frozen=True)
class AnswerRuns:
    """Per question (all of them): the abstention evidence, and for each of ANSWER_VARIANTS
    whether the answer (never abstaining) quotes the evidence."""

    features: np.ndarray  # one Evidence vector per question
    holds: np.ndarray  # [setting, question]: its quotes hold the evidence (False if unanswerable)
    chars: np.ndarray  # [setting, question]: characters quoted (0 if unanswerable)


def answer_runs(
    engine: Engine, questions: Sequence[Question], vectors: Mapping[str, np.ndarray], settings: AnswerSettings
) -> AnswerRuns:
    index = engine.index
    features, holds = [], np.zeros((len(ANSWER_VARIANTS), len(questions)), dtype=bool)
    chars = np.zeros(holds.shape)
    for column, question in enumerate(questions):
        vector = vectors[question.id]
        hits = engine.search_with_vector(question.question, vector, K)
        parsed = ParsedQuestion.of(question.question)
        features.append(
            evidence_for(parsed, rank_sentences(parsed, vector, hits, index, settings), hits, index, settings)
        )
        if not question.answerable:
            continue
        needle = squash(question.evidence or "")
        for row, variant in enumerate(ANSWER_VARIANTS):
            always = replace(settings, **variant, min_confidence=0.0)
            answer = extractive_answer(question.question, vector, hits, index, always)
            quoted = " ".join(c.quote for c in answer.citations)
            holds[row, column], chars[row, column] = needle in squash(quoted), len(quoted)
    return AnswerRuns(np.vstack([f.vector() for f in features]), holds, chars)


def answered_by(rule: tuple[Sequence[float], float], features: np.ndarray) -> np.ndarray:
    weights, threshold = rule
    return probabilities(features, np.asarray(weights)) >= threshold


def answer_figures(
    answered: np.ndarray, holds: np.ndarray, answerable: np.ndarray, chars: np.ndarray, near: np.ndarray
) -> dict[str, float]:
    """quoted: answered with a quote that holds the evidence; sentences: the quote would hold
    it (the sentence choice alone, as if every question were answered); chars: how long the
    quotes are, in characters, on the mean (a longer answer holds more, and takes longer to read);
    near-refused: the near-misses (`near`: unanswerable questions about the corpus asked, not
    the off-topic ones) refused."""
    unanswerable = ~answerable
    return {
        "near-refused": float((~answered)[near].mean()) if near.any() else float("nan"),
        "chars": float(chars[answerable].mean()) if answerable.any() else float("nan"),
        "quoted": float((answered & holds)[answerable].mean()) if answerable.any() else float("nan"),
        "sentences": float(holds[answerable].mean()) if answerable.any() else float("nan"),
        "answered": float(answered[answerable].mean()) if answerable.any() else float("nan"),
        "refused": float((~answered)[unanswerable].mean()) if unanswerable.any() else float("nan"),
    }


OFFTOPIC = "offtopic"


def per_corpus(questions: Sequence[Question], corpora: Sequence[str]) -> list[Question]:
    """The questions, each off-topic one once per corpus (asked of that corpus's index)."""
    out = [q for q in questions if q.corpus != OFFTOPIC]
    out += [replace(q, id=f"{q.id}@{c}", corpus=c) for q in questions if q.corpus == OFFTOPIC for c in corpora]
    return out


def leave_one_corpus_out(engines: Mapping[str, Engine], asked: Sequence[Question]) -> tuple[list[Held], dict]:
    """Each corpus's figures under the defaults and under settings chosen on the other corpora."""
    questions = [q for q in per_corpus(asked, sorted(engines)) if q.corpus in engines]
    asked_ids = {q.id for q in asked}  # an off-topic question's per-corpus copies have new ids
    settings = next(iter(engines.values())).settings
    answerable_qs = [q for q in questions if q.answerable]
    points: list[SearchSettings] = []
    rank_columns, features, holds, chars = [], [], [], []
    for corpus, engine in engines.items():
        mine = [q for q in questions if q.corpus == corpus]
        vectors = {q.id: engine.embedder.encode([q.question]) for q in mine}  # as `ask` embeds them
        points, ranks = retrieval_table(engine, [q for q in mine if q.answerable], vectors, settings.search)
        rank_columns.append((corpus, ranks))
        runs = answer_runs(engine, mine, vectors, settings.answer)
        features.append((corpus, runs.features))
        holds.append((corpus, runs.holds))
        chars.append((corpus, runs.chars))
    order = {corpus: i for i, corpus in enumerate(engines)}
    questions = sorted(questions, key=lambda q: order[q.corpus])  # the order the runs were made in
    answerable_qs = [q for q in questions if q.answerable]
    ranks = np.hstack([r for _, r in rank_columns])
    scores = retrieval_scores(ranks)
    runs = AnswerRuns(
        np.vstack([f for _, f in features]), np.hstack([h for _, h in holds]), np.hstack([c for _, c in chars])
    )
    corpora = [q.corpus for q in questions]
    answerable = np.array([q.answerable for q in questions])
    labels = np.array(corpora)
    near = np.array([not q.answerable and q.id in asked_ids for q in questions])
    default_rule = (settings.answer.confidence_weights, settings.answer.min_confidence)
    held = []
    for corpus in sorted(set(corpora)):
        mine = labels == corpus
        mine_answerable = np.array([q.corpus == corpus for q in answerable_qs])
        default, chosen, choice = {}, {}, {}
        pick = macro_choice(scores["MRR@10"], [q.corpus for q in answerable_qs], corpus)
        choice["search"] = f"k1 {points[pick].bm25_k1}, {describe(points[pick])}"
        for name, table in scores.items():
            default[name] = float(table[0, mine_answerable].mean())
            chosen[name] = float(table[pick, mine_answerable].mean())
        sentence_pick = macro_choice(runs.holds[:, answerable].astype(float), list(labels[answerable]), corpus)
        choice["answer"] = str(ANSWER_VARIANTS[sentence_pick] or "today's")
        train = ~mine
        rule = fit(runs.features[train], answerable[train].astype(float))
        choice["abstention"] = f"threshold {rule.threshold:.3f}"
        default |= answer_figures(
            answered_by(default_rule, runs.features[mine]),
            runs.holds[0, mine],
            answerable[mine],
            runs.chars[0, mine],
            near[mine],
        )
        chosen |= answer_figures(
            answered_by((rule.weights, rule.threshold), runs.features[mine]),
            runs.holds[sentence_pick, mine],
            answerable[mine],
            runs.chars[sentence_pick, mine],
            near[mine],
        )
        counts = int(answerable[mine].sum()), int((~answerable[mine]).sum()), int(near[mine].sum())
        held.append(Held(corpus, *counts, default, chosen, choice))
    types = np.array([q.type for q in questions])
    default_answered = answered_by(default_rule, runs.features)
    by_type = {
        kind: answer_figures(
            default_answered[kinds], runs.holds[0, kinds], answerable[kinds], runs.chars[0, kinds], near[kinds]
        )
        for kind in sorted(set(types))
        for kinds in [types == kind]
    }
    return held, {**pooled_figures(held), "by_type": by_type}


def pooled_figures(held: Sequence[Held]) -> dict:
    """Question-weighted means over the corpora of each held-out figure."""
    out: dict[str, dict[str, float]] = {"default": {}, "chosen": {}}
    for which in out:
        for name in ("R@1", "R@5", "MRR@10", "quoted", "sentences", "answered", "chars"):
            pairs = [
                (getattr(h, which)[name], h.answerable) for h in held if name in getattr(h, which) and h.answerable
            ]
            out[which][name] = sum(v * n for v, n in pairs) / sum(n for _, n in pairs)
        for name, count in (("refused", "unanswerable"), ("near-refused", "near_misses")):
            pairs = [(getattr(h, which)[name], getattr(h, count)) for h in held if getattr(h, count)]
            out[which][name] = sum(v * n for v, n in pairs) / sum(n for _, n in pairs)
    return out


def render(held: Sequence[Held], pooled: dict, chosen: bool = True) -> str:
    """The per-corpus table: each cell today's defaults → the settings chosen without that corpus
    (`chosen` False: today's defaults alone, for a sealed set that nothing is chosen on)."""
    names = ("R@1", "R@5", "MRR@10", "quoted", "sentences", "answered", "refused", "near-refused", "chars")
    lines = [
        "| corpus | answerable | unanswerable | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]

    def cell(figures: dict, name: str) -> str:
        value = figures.get(name)
        if value is None or value != value:
            return "-"
        return f"{value:.0f}" if name == "chars" else f"{value:.3f}"

    def cells(default: dict, other: dict) -> str:
        return " | ".join(f"{cell(default, n)} → {cell(other, n)}" if chosen else cell(default, n) for n in names)

    for h in held:
        lines.append(f"| {h.corpus} | {h.answerable} | {h.unanswerable} | " + cells(h.default, h.chosen) + " |")
    lines.append("| pooled | | | " + cells(pooled["default"], pooled["chosen"]) + " |")
    if chosen:
        lines.append("")
        lines.append("Each cell: today's defaults → the settings chosen without that corpus. Choices:")
        lines += [f"- {h.corpus}: " + "; ".join(f"{k} {v}" for k, v in h.choice.items()) for h in held]
    lines += [
        "",
        "Answers by question type, today's defaults:",
        "",
        "| type | quoted | answered | refused | near-refused | chars |",
    ]
    lines.append("|---|---|---|---|---|---|")
    for kind, figures in pooled["by_type"].items():
        lines.append(
            f"| {kind} | "
            + " | ".join(cell(figures, n) for n in ("quoted", "answered", "refused", "near-refused", "chars"))
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--indexes", type=Path, required=True, help="one index per corpus, each named by its corpus")
    parser.add_argument("--questions", type=Path, default=REALDOCS_QUESTIONS)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument(
        "--defaults-only",
        action="store_true",
        help="report today's defaults alone (a sealed set: nothing is chosen on it)",
    )
    args = parser.parse_args(argv)
    questions = load_questions(args.questions)
    if any(not q.corpus for q in questions):
        parser.error(f"{args.questions}: every question needs a corpus field")
    named = sorted({q.corpus for q in questions} - {OFFTOPIC})
    if missing := [c for c in named if not (args.indexes / c).is_dir()]:
        parser.error(f"{args.indexes}: no index for {', '.join(missing)} (make eval-realdocs builds them)")
    embedder = default_embedder()
    engines = {corpus: Engine(args.indexes / corpus, embedder) for corpus in named}
    held, pooled = leave_one_corpus_out(engines, questions)
    print(render(held, pooled, chosen=not args.defaults_only))
    if args.out:
        args.out.write_text(json.dumps({"held_out": [asdict(h) for h in held], "pooled": pooled}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
