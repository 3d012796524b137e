"""The abstention fit: the threshold rule and the logistic fit on hand-made evidence."""

import numpy as np
import pytest
from cite.eval.calibrate import choose_threshold, fit, probabilities, rates

# Scores of ten answerable (1) and four unanswerable (0) questions.
P = np.array([0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5, 0.4, 0.3, 0.65, 0.45, 0.2, 0.1])
Y = np.r_[np.ones(10), np.zeros(4)]


def test_the_threshold_refuses_the_most_that_the_share_allows_and_answers_the_rest():
    # 9 of 10 answerable allow a threshold up to 0.4 (the 9th best answerable score); it
    # refuses 0.2 and 0.1, and so does any threshold above 0.2: midway to the 0.3 above it.
    threshold = choose_threshold(P, Y, answer_at_least=0.9)
    assert threshold == pytest.approx(0.25)
    assert rates(P, Y, threshold) == (pytest.approx(1.0), pytest.approx(0.5))
    stricter = choose_threshold(P, Y, answer_at_least=0.7)  # up to 0.6: refuses 0.45 too
    assert stricter == pytest.approx(0.475) and rates(P, Y, stricter) == (pytest.approx(0.8), pytest.approx(0.75))


def test_the_default_answers_at_least_95_percent():
    threshold = choose_threshold(P, Y)  # 95% of 10 rounds up to all 10: at most 0.3
    assert threshold == pytest.approx(0.25) and rates(P, Y, threshold)[0] == 1.0


def test_with_nothing_to_refuse_below_it_the_threshold_answers_every_answerable_question():
    p, y = np.array([0.9, 0.6, 0.5, 0.8]), np.array([1.0, 1.0, 1.0, 0.0])
    assert choose_threshold(p, y, answer_at_least=0.6) == pytest.approx(0.5)


def test_a_share_outside_0_to_1_is_refused():
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="answer_at_least"):
            choose_threshold(P, Y, answer_at_least=bad)


def test_the_fit_separates_separable_evidence():
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0.7, 0.05, (20, 2)), rng.normal(0.3, 0.05, (20, 2))])
    y = np.r_[np.ones(20), np.zeros(20)]
    rule = fit(x, y)
    p = probabilities(x, np.array(rule.weights))
    assert len(rule.weights) == 3 and rule.weights[0] > 0 and rule.weights[1] > 0
    answered, refused = rates(p, y, rule.threshold)
    assert answered >= 0.95 and refused == 1.0
