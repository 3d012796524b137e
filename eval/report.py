"""An eval report three ways: a terminal table, JSON, and Markdown with a PNG plot."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cite.eval.published import PUBLISHED, published_table
from cite.eval.suite import EvalReport, Miss

# In a checkout, eval/reports (the repository keeps them); installed, a folder where cite runs.
_CHECKOUT_REPORTS = Path(__file__).resolve().parent / "reports"
REPORTS = _CHECKOUT_REPORTS if _CHECKOUT_REPORTS.is_dir() else Path("cite-reports")
_LABEL = {"hit": "Recall@k (evidence in top k)", "recall": "Recall@k"}


def report_json(report: EvalReport) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": report.name,
        "queries": report.queries,
        "documents": report.documents,
        "passages": report.passages,
        "index_seconds": round(report.index_seconds, 2),
        "methods": {
            r.method: {"metrics": {k: round(v, 4) for k, v in r.metrics.items()}, "seconds": round(r.seconds, 3)}
            for r in report.results
        },
        "notes": report.notes,
    }
    if report.abstention:
        a = report.abstention
        data["abstention"] = {
            **asdict(a),
            "answered_rate": round(a.answered_rate, 4),
            "abstained_rate": round(a.abstained_rate, 4),
            "evidence_rate": round(a.evidence_rate, 4),
            "evidence_of_answerable": round(a.evidence_of_answerable, 4),
            "page_rate": round(a.page_rate, 4),
        }
        data["by_type"] = {name: asdict(t) for name, t in report.by_type.items()}
    return data


def format_table(report: EvalReport) -> str:
    measures = list(report.results[0].metrics) if report.results else []
    header = f"{'method':<8}" + "".join(f"{m:>12}" for m in measures) + f"{'ms/query':>10}"
    lines = [
        f"{report.name}: {report.queries} questions, {report.documents} documents, {report.passages} passages "
        f"(indexing {report.index_seconds:.1f}s)",
        header,
        "-" * len(header),
    ]
    per_query = max(report.queries, 1)
    for result in report.results:
        cells = "".join(f"{result.metrics[m]:>12.4f}" for m in measures)
        lines.append(f"{result.method:<8}{cells}{1000 * result.seconds / per_query:>10.1f}")
    if report.abstention:
        a = report.abstention
        lines.append(
            f"answers: answered {a.answered}/{a.answerable} answerable ({a.answered_rate:.0%}), "
            f"abstained on {a.abstained}/{a.unanswerable} unanswerable ({a.abstained_rate:.0%}), "
            f"evidence in the citations of {a.evidence_cited}/{a.answered} answers ({a.evidence_rate:.0%}; "
            f"{a.evidence_of_answerable:.0%} of answerable)"
            + (f", first citation on the evidence page {a.page_right}/{a.paged} ({a.page_rate:.0%})" if a.paged else "")
        )
        lines += answers_by_type(report)
    if report.misses:
        shown = ", ".join(f"{m.id} ({_rank(m)})" for m in report.misses[:8])
        more = f", and {len(report.misses) - 8} more" if len(report.misses) > 8 else ""
        lines.append(f"not ranked first by hybrid: {shown}{more} (all in the Markdown report)")
    lines += [f"note: {note}" for note in report.notes[:10]]
    return "\n".join(lines)


def answers_by_type(report: EvalReport) -> list[str]:
    """One row per kind of question: where answering fails, by what was asked."""
    if not report.by_type:
        return []
    header = f"{'type':<10}{'answerable':>11}{'answered':>10}{'evidence':>10}{'page':>7}{'refused':>10}"
    rows = [header, "-" * len(header)]
    for name, t in report.by_type.items():
        page = f"{t.page_rate:.0%}" if t.paged else "-"
        refused = f"{t.abstained}/{t.unanswerable}" if t.unanswerable else "-"
        answered = f"{t.answered_rate:.0%}" if t.answerable else "-"
        evidence = f"{t.evidence_of_answerable:.0%}" if t.answerable else "-"
        rows.append(f"{name:<10}{t.answerable:>11}{answered:>10}{evidence:>10}{page:>7}{refused:>10}")
    return rows


def _rank(miss: Miss) -> str:
    return f"rank {miss.rank}" if miss.rank else "not in top 20"


def _misses_section(report: EvalReport) -> str:
    """Every question whose evidence hybrid search did not rank first, for a person to read."""
    if not report.misses:
        return ""
    lines = ["| id | question | evidence ranked |", "|---|---|---|"]
    for miss in report.misses:
        question = miss.question.replace("|", "\\|")
        lines.append(f"| {miss.id} | {question} | {_rank(miss)} |")
    return "\n## Questions whose evidence was not ranked first (hybrid)\n\n" + "\n".join(lines) + "\n"


def plot(report: EvalReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for result in report.results:
        ks = sorted(result.curve)
        axes.plot(ks, [result.curve[k] for k in ks], marker="o", label=result.method)
    axes.set_xscale("log")
    axes.set_xticks(sorted(report.results[0].curve) if report.results else [])
    axes.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.set_xlabel("k (passages or documents retrieved)")
    axes.set_ylabel(_LABEL.get(report.curve_metric, report.curve_metric))
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    axes.set_title(f"{report.name}: {report.queries} questions")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def write_report(report: EvalReport, folder: Path = REPORTS) -> tuple[Path, Path]:
    """Markdown with the table and the plot beside it; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    png = plot(report, folder / f"{report.name}.png")
    markdown = folder / f"{report.name}.md"
    markdown.write_text(
        f"# Retrieval eval: {report.name}\n\n"
        f"Run {time.strftime('%Y-%m-%d %H:%M')}. Metrics are means over the judged questions.\n\n"
        f"```\n{format_table(report)}\n```\n\n![{_LABEL.get(report.curve_metric)} by k]({png.name})\n"
        + _published_section(report)
        + _misses_section(report),
        encoding="utf-8",
    )
    return markdown, png


def _published_section(report: EvalReport) -> str:
    """The published numbers for this test split, and how many of them each method beats."""
    table = published_table(report.name)
    if not table:
        return ""
    rows = PUBLISHED[report.name.lower()]
    best = max(rows, key=lambda row: row.ndcg10)
    lines = []
    for result in report.results:
        ours = result.metrics.get("ndcg@10")
        if ours is not None:
            beaten = sum(ours > row.ndcg10 for row in rows)
            lines.append(
                f"- {result.method}: nDCG@10 {ours:.4f}, above {beaten} of the {len(rows)} published rows; "
                f"{ours - best.ndcg10:+.4f} against the best ({best.system})"
            )
    return "\n## Published numbers, same test split\n\n" + table + "\n\n" + "\n".join(lines) + "\n"
