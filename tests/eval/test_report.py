from cite.eval.report import write_report
from cite.eval.runner import MethodResult
from cite.eval.suite import EvalReport


def _report(name: str) -> EvalReport:
    results = [
        MethodResult("dense", {"ndcg@10": 0.60, "recall@100": 0.90}, 1.0, {1: 0.3, 10: 0.7, 100: 0.9}),
        MethodResult("hybrid", {"ndcg@10": 0.75, "recall@100": 0.96}, 2.0, {1: 0.5, 10: 0.8, 100: 0.96}),
    ]
    return EvalReport(name, 300, 5183, 10776, 1.5, results, "recall")


def test_beir_test_report_sets_our_numbers_beside_the_published_ones(tmp_path):
    markdown, png = write_report(_report("scifact-test"), tmp_path)
    text = markdown.read_text(encoding="utf-8")
    assert png.exists() and png.stat().st_size > 1000
    assert f"]({png.name})" in text
    assert "| bge-small-en-v1.5 (dense) | 0.7127 | 0.9450 |" in text
    assert "- hybrid: nDCG@10 0.7500, above 7 of the 7 published rows; +0.0373 against the best (bge-small" in text
    assert "- dense: nDCG@10 0.6000, above 0 of the 7" in text


def test_a_report_without_published_numbers_has_no_such_section(tmp_path):
    markdown, _ = write_report(_report("scifact-train"), tmp_path)
    assert "Published numbers" not in markdown.read_text(encoding="utf-8")


def test_misses_list_questions_not_answered_first_worst_first(tmp_path):
    from dataclasses import replace

    from cite.eval.suite import Miss, misses

    run = {"a": {"p1": 0.9, "p2": 0.8}, "b": {"p3": 0.9, "p1": 0.5}, "c": {"p9": 1.0}, "d": {}}
    qrels = {"a": {"p1": 1}, "b": {"p1": 1}, "c": {"p1": 1}, "d": {}}
    queries = {"a": "A?", "b": "B | b?", "c": "C?", "d": "D?"}
    found = misses(run, qrels, queries)
    assert found == [Miss("c", "C?", None), Miss("b", "B | b?", 2)]  # "a" was first; "d" has no evidence
    report = replace(_report("mine"), misses=found)
    text = write_report(report, tmp_path)[0].read_text(encoding="utf-8")
    assert "| c | C? | not in top 20 |" in text and "| b | B \\| b? | rank 2 |" in text


def test_a_citation_running_onto_the_evidence_page_is_on_it():
    from cite.core.types import Citation
    from cite.eval.suite import on_page

    across = Citation(1, "manual.pdf", 0, 9, "Some text", page=16, last_page=17)
    assert on_page(across, 16) and on_page(across, 17) and not on_page(across, 18)
    one = Citation(1, "manual.pdf", 0, 9, "Some text", page=16)
    assert on_page(one, 16) and not on_page(one, 17)
    assert not on_page(Citation(1, "notes.txt", 0, 9, "Some text"), 1) and not on_page(None, 1)
