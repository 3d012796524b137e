"""Tuning fusion weights on judged questions, and the per-index settings file it writes."""

import shutil

import numpy as np
import pytest
from cite.core.config import SETTINGS_FILE, SearchSettings, Settings, load_settings, save_settings
from cite.core.errors import CiteError
from cite.eval.datasets import SEED_QUESTIONS
from cite.eval.tune import Tuning, _cross_validated, grid, save_if_better
from cite.retriever.engine import Engine
from cite.ui.cli import main


def test_grid_starts_with_the_current_settings_and_holds_each_point_once():
    current = SearchSettings(dense_weight=0.2, bm25_weight=0.3, sentence_weight=0.5)
    points = grid(current)
    assert points[0] == current and points[1].fusion == "rrf"
    assert len(points) == len(set(points)) == 2 + 65  # 66 convex points on the 0.1 simplex, less the current one


def test_cross_validation_scores_each_fold_with_weights_picked_without_it():
    # Setting 1 wins on questions 0-3 but loses on 4; setting 0 is flat. Five folds of one question:
    # picking without question 4 chooses setting 1 (scored 0.0 there), without any other also 1.
    table = np.array([[0.5, 0.5, 0.5, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0, 0.0]])
    assert _cross_validated(table, folds=5) == pytest.approx(4 / 5)
    # A tie on the other questions keeps the current settings (row 0): without question 0, rows
    # tie at 0.5 and row 0 scores 1.0 on it; the other two folds pick the row that then scores 0.
    table = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    assert _cross_validated(table, folds=3) == pytest.approx(1 / 3)


def test_settings_file_round_trips_and_a_bad_one_is_a_clear_error(tmp_path):
    assert load_settings(tmp_path) == Settings()
    tuned = Settings(search=SearchSettings(dense_weight=0.2, sentence_weight=0.5))
    save_settings(tmp_path, tuned, "tuned by a test")
    assert load_settings(tmp_path) == tuned
    (tmp_path / SETTINGS_FILE).write_text("[search]\ndense_wieght = 0.5\n", encoding="utf-8")
    with pytest.raises(CiteError, match="dense_wieght.*Fix or delete it"):
        load_settings(tmp_path)
    (tmp_path / SETTINGS_FILE).write_text("[split]\nmax_chars = 500\n", encoding="utf-8")
    with pytest.raises(CiteError, match="cite index"):
        load_settings(tmp_path)


@pytest.mark.slow
def test_engine_searches_with_the_index_settings(seed_index, real_embedder, tmp_path):
    root = tmp_path / "index"
    shutil.copytree(seed_index, root)
    save_settings(root, Settings(search=SearchSettings(fusion="rrf")), "test")
    engine = Engine(root, real_embedder)
    assert engine.settings.search.fusion == "rrf"
    hit = engine.search("Who publishes the Monitor?", 1)[0]
    assert hit.score < 0.1  # an RRF score (sum of 1/(60 + rank)), not a convex one


def _tuning(cross_validated: float) -> Tuning:
    current, best = SearchSettings(), SearchSettings(dense_weight=0.1, bm25_weight=0.4, sentence_weight=0.5)
    return Tuning("mrr@10", 40, current, 0.80, cross_validated, [(0.86, best), (0.80, current)])


def test_tuned_weights_are_saved_only_when_they_win_on_held_out_questions(tmp_path):
    kept = save_if_better(_tuning(cross_validated=0.79), tmp_path, Settings())
    assert "Kept the current settings" in kept and not (tmp_path / SETTINGS_FILE).exists()
    saved = save_if_better(_tuning(cross_validated=0.83), tmp_path, Settings())
    assert "Saved dense/BM25/sentence 0.1/0.4/0.5" in saved
    assert load_settings(tmp_path).search == SearchSettings(dense_weight=0.1, bm25_weight=0.4, sentence_weight=0.5)


@pytest.mark.slow
def test_cite_eval_tune_on_your_own_questions(seed_index, tmp_path, capsys):
    root = tmp_path / "index"
    shutil.copytree(seed_index, root)
    questions = tmp_path / "mine.jsonl"
    lines = SEED_QUESTIONS.read_text(encoding="utf-8").splitlines()[:30]
    questions.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code = main(["eval", "--questions", str(questions), "--index", str(root), "--report-dir", str(tmp_path), "--tune"])
    out = capsys.readouterr().out
    assert code == 0 and "hybrid" in out and (tmp_path / "mine.md").exists()
    assert "tuning fusion on" in out and "tuning, held out" in out
    assert ("Saved" in out) == (root / SETTINGS_FILE).exists()


def test_tuning_on_test_queries_is_refused(capsys):
    assert main(["eval", "--beir", "../shared/bench/scifact", "--tune"]) == 1
    assert "never on the test queries" in capsys.readouterr().err
