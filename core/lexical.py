"""The one tokenizer for BM25 (the index and the queries must agree on it exactly), and the
one lexical index type over its tokens.

BM25 statistics are kept per segment (`Postings`: term frequencies and passage lengths),
and the collection-wide parts (IDF, mean passage length) are summed over the segments at
query time, so a new segment never touches the old ones: adding a document costs what the
document holds. Scores are bm25s' Lucene variant, the same as scoring one big index.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

TOKENIZER_NAME = "words-lower-stopwords-en-snowball-english-v1"
_WORD = re.compile(r"\w+", re.UNICODE)
K1 = 1.2  # Lucene's default term-frequency saturation: what plain BM25 search uses
B = 0.75
POSTINGS_FILES = ("bm25_vocab.json", "bm25_indptr.npy", "bm25_rows.npy", "bm25_tf.npy", "bm25_lengths.npy")
_MAX_TF = np.iinfo(np.uint16).max
# Up to this many passages, scoring them all costs less (under a millisecond) than
# MaxScore's bookkeeping (0.6 ms against 0.15 ms on the seeds' 82 passages).
EXHAUSTIVE_UP_TO = 50_000
_RESCORED = 2000  # passages `top_scored` may score exactly, one by one, instead of scattering on
# `top_scored`'s bounds are float sums in another order than the exact scores: a passage is
# ruled out only below the n-th best score by this relative margin, so not even a tie is lost.
_MARGIN = 1e-5


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer  # PyStemmer: C snowball, fast enough to stem whole corpora

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """The English stopwords BM25 leaves out (bm25s's list)."""
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(text: str) -> list[str]:
    """Lowercased words, English stopwords dropped, Snowball-stemmed."""
    stop = stopwords()
    words = [w for w in _WORD.findall(text.lower()) if w not in stop]
    return _stemmer().stemWords(words)


# Words that shape a question but say nothing about its subject ("Where does ... flow?").
QUESTION_WORDS = frozenset(
    "what who whom whose when where why how which whether does do did doe is are was were be been "
    "can could would should will shall may might must have has had tell me please".split()
)


def question_terms(text: str) -> list[str]:
    """`tokenize`, without the words that only make it a question."""
    dropped = _question_word_stems()
    return [token for token in tokenize(text) if token not in dropped]


@lru_cache(maxsize=1)
def _question_word_stems() -> frozenset[str]:
    return frozenset(_stemmer().stemWords(list(QUESTION_WORDS)))


def lucene_idf(df: int | np.ndarray, n: int) -> float | np.ndarray:
    """bm25s' (and Lucene's) IDF: never negative; a token no passage holds gets the maximum."""
    return np.log(1.0 + (n - np.asarray(df, dtype=np.float64) + 0.5) / (np.asarray(df, dtype=np.float64) + 0.5))


@dataclass(frozen=True, eq=False)
class Postings:
    """One segment's BM25 statistics: for each term (a column), the passages (rows) that hold
    it and how often, plus every passage's length in tokens. Arrays may be memory-mapped."""

    columns: dict[str, int]  # term -> column
    indptr: np.ndarray  # int64 (terms + 1): column c owns postings indptr[c]:indptr[c + 1]
    rows: np.ndarray  # int32, passage row of each posting (ascending within a column)
    tf: np.ndarray  # uint16, term frequency of each posting
    lengths: np.ndarray  # int32 (passages,), tokens per passage

    @classmethod
    def build(cls, tokens: Sequence[list[str]]) -> Postings:
        """Postings of `tokens`, one list per passage (the same list object given twice is
        counted once and reused, which keeps repeated texts cheap)."""
        columns: dict[str, int] = {}
        seen: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        terms, counts, lengths = [], [], np.zeros(len(tokens), dtype=np.int32)
        for row, words in enumerate(tokens):
            lengths[row] = len(words)
            bag = seen.get(id(words))
            if bag is None:
                ids = np.fromiter((columns.setdefault(w, len(columns)) for w in words), np.int32, len(words))
                bag = seen[id(words)] = np.unique(ids, return_counts=True)
            terms.append(bag[0])
            counts.append(bag[1])
        per_row = np.fromiter((len(t) for t in terms), np.int64, len(terms))
        term = np.concatenate(terms) if terms else np.zeros(0, np.int32)
        tf = np.minimum(np.concatenate(counts), _MAX_TF).astype(np.uint16) if counts else np.zeros(0, np.uint16)
        row_of = np.repeat(np.arange(len(tokens), dtype=np.int32), per_row)
        order = np.argsort(term, kind="stable")  # by column, rows ascending within one
        indptr = np.zeros(len(columns) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term, minlength=len(columns)), out=indptr[1:])
        return cls(columns, indptr, row_of[order], tf[order], lengths)

    @classmethod
    def load(cls, folder: Path) -> Postings:
        """Opens postings `save` wrote into `folder`, arrays memory-mapped.

        Raises:
            OSError, ValueError: when files are missing or damaged.
        """
        vocab = json.loads((folder / POSTINGS_FILES[0]).read_text(encoding="utf-8"))
        arrays = [mapped_array(folder / name) for name in POSTINGS_FILES[1:]]
        postings = cls({term: column for column, term in enumerate(vocab)}, *arrays)
        if len(postings.indptr) != len(vocab) + 1 or int(postings.indptr[-1]) != len(postings.rows):
            raise ValueError(f"BM25 postings in {folder} are inconsistent")
        return postings

    def save(self, folder: Path) -> None:
        """Writes the postings as POSTINGS_FILES in `folder` (a vocabulary list and arrays)."""
        vocab = sorted(self.columns, key=self.columns.__getitem__)
        (folder / POSTINGS_FILES[0]).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        for name, array in zip(POSTINGS_FILES[1:], (self.indptr, self.rows, self.tf, self.lengths), strict=True):
            np.save(folder / name, array)

    @property
    def num_docs(self) -> int:
        return len(self.lengths)

    def df(self, token: str) -> int:
        column = self.columns.get(token)
        return 0 if column is None else int(self.indptr[column + 1] - self.indptr[column])

    def holders(self, token: str) -> np.ndarray:
        """The rows of the passages that hold `token`, ascending (none for an unknown token)."""
        column = self.columns.get(token)
        if column is None:
            return np.zeros(0, dtype=np.int32)
        return self.rows[self.indptr[column] : self.indptr[column + 1]]

    def bags(self, rows: Sequence[int]) -> list[list[str]]:
        """The tokens of passages `rows` as a bag (each term repeated by its frequency; order lost,
        which BM25 never looks at): what moving passages into another segment needs."""
        wanted = np.zeros(self.num_docs, dtype=bool)
        wanted[np.asarray(rows, dtype=np.int64)] = True
        keep = wanted[self.rows]
        terms = np.repeat(np.arange(len(self.columns), dtype=np.int64), np.diff(self.indptr))[keep]
        vocab = sorted(self.columns, key=self.columns.__getitem__)
        bags: dict[int, list[str]] = {int(row): [] for row in rows}
        for row, term, tf in zip(self.rows[keep].tolist(), terms.tolist(), self.tf[keep].tolist(), strict=True):
            bags[row].extend([vocab[term]] * tf)
        return [bags[int(row)] for row in rows]


@dataclass(frozen=True)
class QueryWeights:
    """A query as BM25 weighs it: each token's IDF over the whole index (a shard scores its own
    postings with the whole index's), the mean passage length, and the k1 to score with."""

    weights: dict[str, float]
    mean_length: float
    k1: float = K1

    @classmethod
    def of(cls, lexical: LexicalIndex, query: str, k1: float = K1) -> QueryWeights:
        return cls(lexical.query_weights(tokenize(query)), lexical.mean_length, k1)


class LexicalIndex:
    """BM25 over the passages of one or more segments (Lucene variant, as bm25s scores it):
    the one place that knows BM25. Rows count through the segments in order.

    Build it from tokens (`build`, one segment) or from stored segments' `Postings`."""

    def __init__(self, parts: Sequence[Postings]) -> None:
        self.parts = list(parts)
        self._starts = np.cumsum([0] + [part.num_docs for part in self.parts])
        total_length = sum(int(np.sum(part.lengths, dtype=np.int64)) for part in self.parts)
        self._mean_length = total_length / max(self.num_docs, 1)

    @classmethod
    def build(cls, tokens: Sequence[list[str]]) -> LexicalIndex:
        """BM25 over `tokens`, one list per passage."""
        return cls([Postings.build(tokens)])

    @property
    def num_docs(self) -> int:
        """How many passages (rows) the index scores."""
        return int(self._starts[-1])

    @cached_property
    def vocab(self) -> frozenset[str]:
        """Every token some passage holds."""
        return frozenset(token for part in self.parts for token in part.columns)

    def has(self, token: str) -> bool:
        """Whether some passage holds `token`."""
        return any(token in part.columns for part in self.parts)

    def df(self, token: str) -> int:
        """How many passages hold `token` (0 for a token the index has never seen)."""
        return sum(part.df(token) for part in self.parts)

    def idf(self, token: str) -> float:
        """The IDF BM25 weighs `token` with; a token the index has never seen gets the maximum."""
        return float(lucene_idf(self.df(token), self.num_docs))

    @property
    def mean_length(self) -> float:
        """The mean passage length in tokens, over every passage the index scores."""
        return self._mean_length

    def query_weights(self, tokens: Sequence[str]) -> dict[str, float]:
        """Each query token's IDF weight (a repeated token counts each time, as in bm25s;
        tokens the index has never seen are left out): the collection-wide part of BM25."""
        weights: dict[str, float] = {}
        for token in tokens:
            if self.has(token):
                weights[token] = weights.get(token, 0.0) + self.idf(token)
        return weights

    def scores(self, tokens: Sequence[str], k1: float = K1) -> np.ndarray:
        """BM25 score of every passage for a query of `tokens` (a repeated token counts each
        time, as in bm25s; tokens the index has never seen count for nothing). `k1`: how fast
        a word's repetitions stop counting (0: only whether the passage has it)."""
        return self.weighted_scores(self.query_weights(tokens), self._mean_length, k1)

    def weighted_scores(self, weights: dict[str, float], mean_length: float, k1: float = K1) -> np.ndarray:
        """BM25 score of every passage for query tokens weighted by `weights`, lengths
        normalised by `mean_length`: given another index's `query_weights` and `mean_length`
        (e.g. of all segments, this being a shard of them), the scores that index gives these rows.

        Raises:
            ValueError: when `k1` is negative.
        """
        _check_k1(k1)
        out = np.zeros(self.num_docs, dtype=np.float32)
        for token, weight in weights.items():
            rows, scores = self._term_scores(token, weight, mean_length, k1)
            out[rows] += scores
        return out

    def top_scored(
        self, weights: dict[str, float], mean_length: float, k1: float, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `n` best rows with a score above 0, best first (ties by row), and their scores:
        what ranking `weighted_scores` gives, without scoring every passage.

        A term adds at most its weight to a passage (tf / (tf + norm) <= 1). So the terms
        are scattered rarest first until the weights of the rest, together, fall below the
        n-th best score so far: a passage holding none of the scattered terms cannot reach the
        top n then (MaxScore). Only passages that still could are scored exactly, by
        `scores_of`. On a million passages this skips most postings, which belong to common words.

        Raises:
            ValueError: when `k1` is negative.
        """
        _check_k1(k1)
        if self.num_docs <= EXHAUSTIVE_UP_TO:
            everything = self.weighted_scores(weights, mean_length, k1)
            held = np.flatnonzero(everything > 0)
            best = held[np.lexsort((held, -everything[held]))[:n]]
            return best, everything[best]
        partial = np.zeros(self.num_docs, dtype=np.float32)  # above 0 exactly where touched
        touched: list[np.ndarray] = []
        count = 0  # passages touched so far
        rest = float(sum(weights.values()))  # the weights of the terms not scattered yet
        floor = 0.0  # the n-th best partial score: a lower bound of the n-th best score
        for token, weight in sorted(weights.items(), key=lambda item: -item[1]):
            # Checking costs a pass over the passages touched so far: worth it only before
            # a term with as many postings, when stopping would save about as much.
            if count >= n and 4 * self.df(token) >= count:
                candidates = np.concatenate(touched)
                scored = partial[candidates]
                floor = float(np.partition(scored, -n)[-n])
                bar = floor * (1 - _MARGIN)
                # Stop once the rest cannot lift an untouched passage, and few touched ones
                # could still reach the top n: scoring those costs less than scattering on.
                if rest < bar and np.count_nonzero(scored + rest >= bar) <= max(4 * n, _RESCORED):
                    break
            rows, scores = self._term_scores(token, weight, mean_length, k1)
            fresh = rows[partial[rows] == 0]
            partial[rows] += scores
            touched.append(fresh)
            count += len(fresh)
            rest -= weight
        else:
            rest = 0.0
        candidates = np.concatenate(touched) if touched else np.zeros(0, dtype=np.int64)
        if not rest and len(candidates) >= n:  # every term scattered: the partial scores are whole
            floor = float(np.partition(partial[candidates], -n)[-n])
        candidates = np.sort(candidates[partial[candidates] + rest >= floor * (1 - _MARGIN)])
        exact = self.scores_of(weights, mean_length, k1, candidates)
        keep = exact > 0
        candidates, exact = candidates[keep], exact[keep]
        best = np.lexsort((candidates, -exact))[:n]
        return candidates[best], exact[best]

    def scores_of(self, weights: dict[str, float], mean_length: float, k1: float, rows: np.ndarray) -> np.ndarray:
        """`weighted_scores(...)[rows]` for ascending `rows`, computed for those rows only, with
        the same arithmetic in the same order (so the same float32 values)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.num_docs <= EXHAUSTIVE_UP_TO:
            return self.weighted_scores(weights, mean_length, k1)[rows]
        out = np.zeros(len(rows), dtype=np.float32)
        for part, start, end in zip(self.parts, self._starts[:-1], self._starts[1:], strict=True):
            first_row, last_row = np.searchsorted(rows, [start, end])
            local = rows[first_row:last_row] - start
            if not len(local):
                continue
            for token, weight in weights.items():
                column = part.columns.get(token)
                if column is None:
                    continue
                first, last = int(part.indptr[column]), int(part.indptr[column + 1])
                holders = part.rows[first:last]
                at = np.minimum(np.searchsorted(holders, local), last - first - 1)
                hit = holders[at] == local
                tf = np.asarray(part.tf[first + at[hit]], dtype=np.float32)
                lengths = np.asarray(part.lengths[local[hit]], dtype=np.float32)
                out[first_row + np.flatnonzero(hit)] += _bm25(weight, tf, lengths, mean_length, k1)
        return out

    def _term_scores(self, token: str, weight: float, mean_length: float, k1: float) -> tuple[np.ndarray, np.ndarray]:
        """The rows holding `token` (ascending) and its BM25 score in each."""
        rows, scores = [], []
        for part, start in zip(self.parts, self._starts, strict=False):
            column = part.columns.get(token)
            if column is None:
                continue
            first, last = int(part.indptr[column]), int(part.indptr[column + 1])
            held = np.asarray(part.rows[first:last], dtype=np.int64)
            lengths = np.asarray(part.lengths[held], dtype=np.float32)
            tf = np.asarray(part.tf[first:last], dtype=np.float32)
            rows.append(held + start if start else held)
            scores.append(_bm25(weight, tf, lengths, mean_length, k1))
        if len(rows) == 1:
            return rows[0], scores[0]
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return np.concatenate(rows), np.concatenate(scores)


def _bm25(weight: float, tf: np.ndarray, lengths: np.ndarray, mean_length: float, k1: float) -> np.ndarray:
    """One term's BM25 score in passages with term frequencies `tf` and token counts `lengths`
    (float32): at most `weight`, since tf / (tf + norm) <= 1."""
    norm = np.float32(k1) * (1 - B + B * lengths / np.float32(mean_length))
    return np.float32(weight) * tf / (tf + norm)


def _check_k1(k1: float) -> None:
    if k1 < 0:
        raise ValueError(f"k1 must be 0 or more. Currently, it is {k1}.")


# numpy reads an .npy header with ast.literal_eval, and CPython 3.11 counts the AST's depth in
# state shared by all threads (cpython#106905): requests loading a new index version at once
# failed now and then with "SystemError: AST constructor recursion depth mismatch" (500s in
# the soak). One header at a time; the arrays themselves are only mapped.
_NPY_HEADERS = threading.Lock()


def mapped_array(path: Path) -> np.ndarray:
    """An .npy file memory-mapped, as a plain array view (np.memmap's own indexing is slow); read
    in full when empty (an empty file cannot be mapped).

    Raises:
        OSError, ValueError: when the file is missing or not an .npy file.
    """
    with _NPY_HEADERS:
        array = np.load(path, mmap_mode="r")
    return np.array(array) if array.size == 0 else np.asarray(array)
