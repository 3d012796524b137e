"""Typed settings, grouped by stage. Unknown keys are rejected with a message that says why."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from cite.core.errors import CiteError

Fusion = Literal["rrf", "convex"]
PassageVectors = Literal["passage", "sentence-mean"]


DEFAULT_K = 10  # passages a search returns, and an answer reads, unless the caller says


@dataclass(frozen=True)
class SplitSettings:
    """How documents become passages and vectors. Part of the index manifest: changing it
    re-splits and re-embeds."""

    max_chars: int = 1000
    overlap_sentences: int = 1
    # The splitter's rules, counted: bumped when they change how a text becomes passages and
    # sentences, so that an index made by the old rules is re-split, not kept. 2: short
    # sections share a passage, list bullets start sentences.
    rules: int = 2
    # "passage" (the default): each passage is embedded whole. "sentence-mean" (`cite index
    # --fast`): a passage's vector is the mean of its sentences' (and its title's) vectors, so
    # only sentences are embedded: about half the indexing time. Seed questions hybrid R@1 .892
    # vs .878, MRR@10 .926 vs .917, and SciFact-1000 nDCG@10 .8504 vs .8537, but on all of
    # SciFact it lost: test nDCG@10 .7277 vs .7409, train .7372 vs .7459 (more than the .005
    # the compact-index issue allows), so it is not the default.
    passage_vectors: PassageVectors = "passage"
    # BM25 reads each use of an acronym its document defines ("Commonwealth of Independent
    # States (CIS)") as if spelled out, so a question using the long form finds a passage that
    # says "CIS". The dense vectors are left alone: spelling out there measured worse
    # (SciFact train hybrid nDCG@10 .7394 against .7472 for BM25 only, .7448 for neither).
    spell_out_acronyms: bool = True
    # The passage's section path ("2 Objects > 2.1.8 Lazy arguments") is embedded and
    # BM25-indexed with it, after the document title (a "contextual chunk header"). Off: on ten
    # manuals, each held out, R@1 .708 with it against .713 without (bench/results/README.md).
    section_context: bool = False

    def __post_init__(self) -> None:
        if self.max_chars < 100:
            raise ValueError(f"max_chars must be at least 100. Currently, it is {self.max_chars}.")
        if self.overlap_sentences < 0:
            raise ValueError(f"overlap_sentences must be 0 or more. Currently, it is {self.overlap_sentences}.")
        if self.passage_vectors not in ("passage", "sentence-mean"):
            raise ValueError(
                f"passage_vectors must be 'passage' or 'sentence-mean'. Currently, it is {self.passage_vectors!r}."
            )


@dataclass(frozen=True)
class SearchSettings:
    """How the dense, lexical and best-sentence rankings are combined."""

    fusion: Fusion = "convex"
    # Convex fusion weights of the min-max normalised scores (RRF ignores them but for 0 = off).
    dense_weight: float = 0.3
    bm25_weight: float = 0.3
    sentence_weight: float = 0.4  # the passage's best-matching sentence, by cosine
    # The sentence channel compares the query with single sentences, which only means
    # something for a query about a sentence long; a longer query (a paragraph, a whole
    # argument) is matched at passage level only.
    sentence_query_words: int = 40
    rrf_k: int = 60
    candidates: int = 100  # taken from each searcher before fusion
    # BM25's k1 in the hybrid's lexical channel: how fast a word's repetitions in a passage stop
    # counting (plain BM25 search keeps Lucene's 1.2, which is better alone). Next to the dense
    # channels, BM25 is best as a near-binary "which of the question's rare words does it hold".
    # Hybrid, k1 0.45 against 1.2 (b 0.75 both; 0.3-0.6 were a plateau on the train questions):
    # real-document train R@1 .682 vs .669, MRR@10 .758 vs .750; held out R@1 .720 vs .707,
    # R@5 .920 vs .907; seed questions R@1 .892 vs .878, MRR .923 vs .917 (test split MRR .901
    # vs .898); SciFact nDCG@10 train .748 vs .742, test .739 vs .737.
    bm25_k1: float = 0.45
    # That k1 was chosen on question-length queries. A query longer than sentence_query_words
    # (a paragraph, an argument) keeps Lucene's 1.2: on ArguAna, whose queries are arguments,
    # 0.45 cost the hybrid .007 nDCG@10 (test .5486 vs .5559).
    long_query_bm25_k1: float = 1.2
    # Late interaction (retriever/rerank.py): the top `token_depth` fused hits of a question are
    # re-ordered by (1 - token_weight) x fused + token_weight x token match (0: off). Chosen
    # leave-one-corpus-out from 0, 0.4, 0.6, 0.8 with the fusion weights and k1: every one of
    # the ten folds chose 0.6 (held out R@1 .713 -> .730, R@5 .894 -> .904, MRR@10 .792 -> .804;
    # bench/results/README.md, "Real documents").
    token_weight: float = 0.6
    token_depth: int = 10

    def __post_init__(self) -> None:
        if self.fusion not in ("rrf", "convex"):
            raise ValueError(f"fusion must be 'rrf' or 'convex'. Currently, it is {self.fusion!r}.")
        if min(self.bm25_k1, self.long_query_bm25_k1) < 0:
            raise ValueError(
                f"bm25_k1 and long_query_bm25_k1 must be 0 or more. "
                f"Currently, they are {self.bm25_k1} and {self.long_query_bm25_k1}."
            )
        weights = (self.dense_weight, self.bm25_weight, self.sentence_weight)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"Fusion weights must be >= 0 and not all 0. Currently, they are {weights}.")
        if self.candidates < 1:
            raise ValueError(f"candidates must be greater than 0. Currently, it is {self.candidates}.")
        if not 0 <= self.token_weight <= 1 or self.token_depth < 0:
            raise ValueError(
                f"token_weight must be in [0, 1] and token_depth 0 or more. "
                f"Currently, they are {self.token_weight} and {self.token_depth}."
            )

    def is_long(self, query: str) -> bool:
        """Whether `query` is longer than a sentence: matched at passage level only, and scored
        by BM25 with `long_query_bm25_k1`."""
        return len(query.split()) > self.sentence_query_words

    def bm25_k1_for(self, query: str) -> float:
        """The k1 the hybrid's BM25 channel scores `query` with."""
        return self.long_query_bm25_k1 if self.is_long(query) else self.bm25_k1


@dataclass(frozen=True)
class AnswerSettings:
    """How extractive answers are built and when the system abstains."""

    passages: int = 4  # top passages the answer sentences are drawn from
    # At most max_sentences quotes, each scoring keep_ratio of the best one's score or more.
    # Chosen leave-one-corpus-out on ten manuals: 4 and 0.7 were chosen without each of them,
    # and held out the quotes held the evidence for .722 of answerable questions against .681
    # at 3 and 0.8, better in 9 of 10 manuals (the grid's edge: answers grow longer beyond it).
    max_sentences: int = 4
    keep_ratio: float = 0.7
    # A quote goes on into the next sentence of its passage when that one's cosine to the
    # question is at least this share of its own (above 1: never). Chosen leave-one-corpus-out
    # on ten manuals (`eval/loco.py`, bench/results/README.md, "Fresh documents").
    continue_ratio: float = 0.7
    coverage_passages: int = 3  # top passages whose words count as covering the question
    # A candidate sentence's score: weights of its cosine to the question, share of question
    # words, holding the answer type asked for, passage ranked first, 1 / passage rank
    # (`retriever.answer.sentence_features`). Chosen leave-one-corpus-out on ten manuals
    # (`eval/loco.py`): the answer-type weight 0.1 was chosen without each of them and held
    # out the quotes held the evidence for .681 of answerable questions against .673 at 0
    # (bench/results/README.md, "Fresh documents").
    sentence_weights: tuple[float, ...] = (0.75, 0.25, 0.1, 0.0, 0.075)
    # Logistic weights of `retriever.confidence.Evidence`, in its order (answer-sentence cosine,
    # top-passage cosine, IDF word coverage in the top passages, IDF share of question words
    # known to the index, best sentence cosine in the top passages, top hit's sentence score,
    # a question's name missing from the top passages and their documents), then the bias.
    # Fitted by `cite eval --calibrate --split train` on the train split of the seed and
    # real-document questions together (188 answerable, 29 unanswerable) with BM25's k1 at 1.2;
    # the threshold was then the highest that answers 95% of those answerable, re-chosen over
    # these weights' train scores with k1 0.45 (0.417 -> 0.4159: 179 of 188 answered, 20 of 29
    # refused). Refitted with k1 0.45, (0.75, 0.59, 1.25, 1.39, 0.78, 0.99,
    # -1.32, -3.61) at 0.391 refused 19 of 29 on train and answered one held-out question fewer
    # (real documents 143/150), so these weights stay. The missing-name signal then learned to
    # look in the top passages' documents too (a passage of PostgreSQL's DELETE page need not
    # say "PostgreSQL"): train answered 179 -> 182 of 188, refused 20 of 29 both; held out
    # seeds answered 33/37 and refused 9/9 both, real documents answered 144 -> 146 of 150 and
    # refused 15 -> 14 of 24 ("Microsoft Word": gnuplot's manual says "word"). A refit over it
    # lost on train (answered 179, evidence 127 against 130), so these weights stay, and the
    # threshold is `eval.calibrate.choose_threshold`'s over their train scores. The evidence is
    # read from the passages in fused order, before the token re-ranking (`evidence_for`), so
    # these stay fitted: read in the re-ranked order, the same rule answered two fewer seed
    # questions, and a threshold re-chosen for it refused fewer near-misses (.542 against .578).
    confidence_weights: tuple[float, ...] = (0.8, 0.17, 1.24, 1.4, 0.83, 1.07, -1.5, -3.46)
    min_confidence: float = 0.4154  # below this the answer abstains

    def __post_init__(self) -> None:
        if self.continue_ratio < 0:
            raise ValueError(f"continue_ratio must be 0 or more. Currently, it is {self.continue_ratio}.")
        if self.max_sentences < 1:
            raise ValueError(f"max_sentences must be greater than 0. Currently, it is {self.max_sentences}.")
        if len(self.sentence_weights) != 5:
            raise ValueError(
                "sentence_weights takes 5 numbers (cosine, words, answer type, first passage, 1/rank). "
                f"Currently, it is {self.sentence_weights}."
            )
        if len(self.confidence_weights) != 8:
            raise ValueError(
                "confidence_weights takes 8 numbers (sentence, passage, coverage, known, best sentence, "
                f"top sentence, missing name, bias). Currently, it is {self.confidence_weights}."
            )


@dataclass(frozen=True)
class Settings:
    split: SplitSettings = field(default_factory=SplitSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Builds settings from nested dicts; unknown groups or keys raise ValueError."""
        groups = {f.name: f.default_factory for f in fields(cls)}  # type: ignore[misc]
        unknown = set(data) - set(groups)
        if unknown:
            raise ValueError(f"Unknown settings group(s) {sorted(unknown)}; known: {sorted(groups)}.")
        built = {}
        for name, factory in groups.items():
            default = factory()
            values = data.get(name, {})
            known = {f.name for f in fields(default)}
            bad = set(values) - known
            if bad:
                raise ValueError(f"Unknown key(s) {sorted(bad)} in [{name}]; known: {sorted(known)}.")
            # TOML has arrays, not tuples: keep settings hashable and comparable.
            values = {key: tuple(value) if isinstance(value, list) else value for key, value in values.items()}
            built[name] = replace(default, **values)
        return cls(**built)


SETTINGS_FILE = "settings.toml"  # in the index folder: search settings tuned for that index


def load_settings(index_root: Path) -> Settings:
    """The index folder's settings.toml ([search] and [answer] groups) over the defaults;
    the defaults when there is none. Split settings live in the index manifest instead."""
    path = Path(index_root) / SETTINGS_FILE
    if not path.is_file():
        return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        if "split" in data:
            raise ValueError("[split] is fixed when the index is built; use `cite index` options instead.")
        return Settings.from_dict(data)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError, TypeError) as error:
        raise CiteError(f"{path} is not usable: {error} Fix or delete it to use the defaults.") from None


def save_settings(index_root: Path, settings: Settings, comment: str) -> Path:
    """Writes the [search] and [answer] groups to the index folder's settings.toml (whole,
    to a temporary file renamed over it, so a reader never sees half of it)."""
    path = Path(index_root) / SETTINGS_FILE
    lines = [f"# {line}" for line in comment.splitlines()]
    for group in ("search", "answer"):
        lines += ["", f"[{group}]"]
        lines += [f"{name} = {_toml_value(value)}" for name, value in asdict(getattr(settings, group)).items()]
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    return repr(value)
