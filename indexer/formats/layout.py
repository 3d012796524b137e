"""Page layout heuristics over the lines of paginated text (PDF text layers and OCR alike):
page furniture, tables of contents and indexes, and headings from an outline or font sizes.
Pure functions over `Line` records, so each rule is tested without a PDF."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

EDGE_LINES = 3  # how many lines at the top and at the bottom of a page may be furniture
_PAGE_NUMBER = re.compile(
    r"^(?:page\s*)?(?:\d{1,4}|[ivxlcdm]{1,7})(?:\s*(?:of|/)\s*\d{1,4})?$|^[-–—]\s*\d{1,4}\s*[-–—]$", re.IGNORECASE
)
_LEADER = re.compile(r"(?:\.\s?){4,}\s*(?:\d{1,4}|[ivxlcdm]{1,7})?\s*$|…{2,}", re.IGNORECASE)
_PAGE_REF = re.compile(r"\S\s+(\d{1,4}|[ivxlcdm]{1,7})$", re.IGNORECASE)
_INDEX_REF = re.compile(r"\w.*,\s*\d{1,4}(?:\s*[-–]\s*\d{1,4})?$")
_SECTION_NUMBER = re.compile(
    r"^(?:(?:part|chapter|appendix|section)\s+)?(?:[a-z]|\d+|[ivxlcdm]+)(?:\.\d+)*\.?\s+", re.I
)
_NOT_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class Line:
    """A line of a page. `baseline` is the distance from the page's top edge, in points;
    `chars` (optional) is the source character index of each character of `text` (-1: none)."""

    text: str
    baseline: float
    size: float
    chars: tuple[int, ...] = ()


@dataclass(frozen=True)
class OutlineItem:
    """An entry of a PDF's outline (bookmarks): `level` 1 is the top; `page` is 0-based."""

    title: str
    level: int
    page: int


Key = tuple[int, int]  # (page index, line index)


def _shape(text: str) -> str:
    """A line as compared across pages: case and spacing ignored, every number alike."""
    return re.sub(r"\d+", "#", " ".join(text.lower().split()))


def _edges(lines: Sequence[Line]) -> list[tuple[str, int]]:
    order = sorted(range(len(lines)), key=lambda i: lines[i].baseline)
    top = order[:EDGE_LINES]
    bottom = [i for i in order[-EDGE_LINES:] if i not in top]
    return [("top", i) for i in top] + [("bottom", i) for i in bottom]


def furniture(pages: Sequence[Sequence[Line]]) -> set[Key]:
    """Running headers, footers and page numbers: lines near a page's top or bottom edge that
    repeat at the same place on other pages (numbers compared as alike, so "Page 3" matches
    "Page 4"); the topmost or bottommost line when it is only a page number; and any edge line
    printed where repeated furniture stands on at least a quarter of the pages, in its font
    size; and edge lines no larger than the body text, set apart from it by more than a blank
    line, at a place where such lines stand on a quarter of the pages (a chapter's running
    title that changes with every chapter)."""
    needed = 2 if len(pages) == 2 else 3
    places: dict[tuple[str, str], list[tuple[int, int, float]]] = defaultdict(list)
    for p, lines in enumerate(pages):
        for zone, i in _edges(lines):
            places[(zone, _shape(lines[i].text))].append((p, i, lines[i].baseline))
    drop: set[Key] = set()
    bands: dict[tuple[str, int, float], set[int]] = defaultdict(set)
    for (zone, shape), hits in places.items():
        for p, i, baseline in hits:
            same_place = {q for q, _, other in hits if abs(other - baseline) <= 1.5}
            # A body line that often starts a page ("Syntax:") repeats in place too; furniture
            # also carries a page number, stands apart from the body, or is on most pages.
            telling = "#" in shape or _isolated(pages[p], i, zone) or len(same_place) >= len(pages) / 2
            if len(same_place) >= needed and telling:
                drop.add((p, i))
                bands[(zone, round(baseline), round(pages[p][i].size))].add(p)
    for p, lines in enumerate(pages):
        order = sorted(range(len(lines)), key=lambda i: lines[i].baseline)
        for i in order[:1] + order[-1:]:
            if _PAGE_NUMBER.match(lines[i].text.strip()):
                drop.add((p, i))
    wide = [band for band, on in bands.items() if len(on) >= max(needed, len(pages) / 4)]
    body = body_size(pages)
    apart: list[tuple[str, float, int, int]] = []  # small edge lines set apart from the body
    for p, lines in enumerate(pages):
        for zone, i in _edges(lines):
            if lines[i].size <= body and _isolated(lines, i, zone):
                apart.append((zone, lines[i].baseline, round(lines[i].size), p))
    for p, lines in enumerate(pages):
        for zone, i in _edges(lines):
            line = lines[i]
            if len(line.text) > 120:
                continue
            if any(z == zone and abs(b - line.baseline) <= 1.5 and s == round(line.size) for z, b, s in wide):
                drop.add((p, i))
            elif line.size <= body and _isolated(lines, i, zone):
                alike = {
                    q for z, b, s, q in apart if z == zone and abs(b - line.baseline) <= 1.5 and s == round(line.size)
                }
                if len(alike) >= max(needed, len(pages) / 4):
                    drop.add((p, i))  # a running title that changes with every chapter
    return drop


def _isolated(lines: Sequence[Line], i: int, zone: str) -> bool:
    """Whether the next line towards the page's middle is further than a blank line away."""
    baseline = lines[i].baseline
    if zone == "top":
        gaps = [line.baseline - baseline for line in lines if line.baseline > baseline]
    else:
        gaps = [baseline - line.baseline for line in lines if line.baseline < baseline]
    return not gaps or min(gaps) >= 2.4 * lines[i].size


def _page_number(token: str) -> int | None:
    if token.isdigit():
        return int(token)
    return None  # a roman numeral counts as a reference but not for the ordering test


def reference_pages(pages: Sequence[Sequence[Line]], drop: set[Key]) -> set[int]:
    """Pages of a table of contents (most lines end in a page number, in increasing order, or
    in dot leaders) or of a back-of-book index (most lines end in ", page")."""
    found: set[int] = set()
    for p, lines in enumerate(pages):
        texts = [line.text.strip() for i, line in enumerate(lines) if (p, i) not in drop and line.text.strip()]
        if len(texts) < 5:
            continue
        if sum(bool(_INDEX_REF.search(t)) for t in texts) >= 0.5 * len(texts):
            found.add(p)
            continue
        numbers: list[int] = []
        refs = 0
        for text in texts:
            ref = _PAGE_REF.search(text)
            if _LEADER.search(text) or ref:
                refs += 1
            if ref and (n := _page_number(ref.group(1))) is not None:
                numbers.append(n)
        rising = sum(b >= a for a, b in zip(numbers, numbers[1:], strict=False))
        in_order = len(numbers) < 3 or rising >= 0.7 * (len(numbers) - 1)
        plausible = not numbers or max(numbers) <= len(pages) + 100
        if refs >= 0.6 * len(texts) and in_order and plausible:
            found.add(p)
    return found


def leader_runs(lines: Sequence[Line]) -> set[int]:
    """Runs of three or more lines ending in dot leaders: a chapter's own small contents list."""
    runs: set[int] = set()
    run: list[int] = []
    for i, line in enumerate([*lines, Line("", 0.0, 0.0)]):
        if _LEADER.search(line.text):
            run.append(i)
            continue
        if len(run) >= 3:
            runs.update(run)
        run = []
    return runs


def body_size(pages: Sequence[Sequence[Line]]) -> float:
    """The font size most characters are set in."""
    sizes: Counter[float] = Counter()
    for lines in pages:
        for line in lines:
            sizes[round(line.size * 2) / 2] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else 0.0


def _norm(text: str) -> str:
    return _NOT_WORD.sub("", text.lower())


def _forms(text: str) -> set[str]:
    """A heading's comparable forms: with and without its section number."""
    text = " ".join(text.split())
    return {f for f in (_norm(text), _norm(_SECTION_NUMBER.sub("", text))) if f}


Spot = tuple[int, int, int]  # a heading's (level, lines it takes, length of a run-in heading or 0)


def outline_headings(
    pages: Sequence[Sequence[Line]], outline: Sequence[OutlineItem], drop: set[Key]
) -> dict[Key, Spot]:
    """Finds each outline entry's line on its page (or the next): `{(page, first line): (level,
    number of lines, 0)}`, a title wrapping onto up to three lines. Failing that, a line that
    begins with the title ("Transpose Shorthand notation for ...") holds a run-in heading: its
    spot records the title's length."""
    found: dict[Key, Spot] = {}
    after: dict[int, int] = defaultdict(lambda: -1)  # entries of a page come in text order
    dropped: dict[int, set[int]] = defaultdict(set)
    for p, i in drop:
        dropped[p].add(i)
    for item in outline:
        wanted = _forms(item.title)
        title = " ".join(item.title.split())
        candidates = [p for p in (item.page, item.page + 1) if 0 <= p < len(pages)]
        hit = None
        for finder in (_find_title, _find_run_in):
            for p in candidates:
                taken = dropped[p] | {i for q, i in found if q == p}
                spot = finder(pages[p], wanted if finder is _find_title else title, after[p] + 1, taken)
                if spot:
                    hit = p, spot
                    break
            if hit:
                break
        if hit:
            p, (i, count, cut) = hit
            found[(p, i)] = (item.level, count, cut)
            after[p] = i + count - 1
    return found


def _find_title(lines: Sequence[Line], wanted: set[str], start: int, taken: set[int]) -> Spot | None:
    for i in range(start, len(lines)):
        if i in taken or not _norm(lines[i].text):
            continue
        first = _forms(lines[i].text)
        if first & wanted:
            return i, 1, 0
        if not any(w.startswith(f) for w in wanted for f in first):
            continue
        joined = lines[i].text
        for j in (i + 1, i + 2):  # a title wrapped onto more lines
            if j >= len(lines) or j in taken or not _norm(lines[j].text):
                break
            joined += " " + lines[j].text
            if _forms(joined) & wanted:
                return i, j - i + 1, 0
    return None


def _find_run_in(lines: Sequence[Line], title: str, start: int, taken: set[int]) -> Spot | None:
    if len(_norm(title)) < 3:
        return None
    for i in range(start, len(lines)):
        if i not in taken and lines[i].text.startswith(title + " "):
            return i, 1, len(title)
    return None


def size_headings(pages: Sequence[Sequence[Line]], drop: set[Key], body: float) -> dict[Key, Spot]:
    """Lines set larger than the body text are headings, up to three consecutive lines of one
    size making one heading; the largest size is level 1, the next level 2, and so on."""
    if not body:
        return {}
    spans: list[tuple[Key, int, float]] = []
    for p, lines in enumerate(pages):
        i = 0
        while i < len(lines):
            if not _heading_like(lines[i], body) or (p, i) in drop:
                i += 1
                continue
            count = 1
            while (
                count < 3
                and i + count < len(lines)
                and (p, i + count) not in drop
                and _heading_like(lines[i + count], body)
                and abs(lines[i + count].size - lines[i].size) < 0.3
                and 0 < lines[i + count].baseline - lines[i + count - 1].baseline < 1.8 * lines[i].size
            ):
                count += 1
            spans.append(((p, i), count, lines[i].size))
            i += count
    sizes = sorted({round(size * 2) / 2 for _, _, size in spans}, reverse=True)
    return {key: (min(6, sizes.index(round(size * 2) / 2) + 1), count, 0) for key, count, size in spans}


def deeper_headings(
    pages: Sequence[Sequence[Line]], outline: dict[Key, Spot], by_size: dict[Key, Spot]
) -> dict[Key, Spot]:
    """The outline's headings plus those an outline too shallow leaves out: lines set larger
    than the body but smaller than every heading the outline names, one level below its deepest."""
    sizes = [pages[p][i].size for p, i in outline]
    if not sizes:
        return dict(outline)
    smallest, deepest = min(sizes), max(level for level, _, _ in outline.values())
    merged = dict(outline)
    covered = {(p, i + k) for (p, i), (_, count, _) in outline.items() for k in range(count)}
    for (p, i), (_, count, _) in by_size.items():
        if pages[p][i].size < smallest - 0.3 and not any((p, i + k) in covered for k in range(count)):
            merged[(p, i)] = (deepest + 1, count, 0)
    return merged


def _heading_like(line: Line, body: float) -> bool:
    text = line.text.strip()
    return (
        line.size >= body * 1.12
        and len(text) <= 150
        and len(text.split()) <= 15
        and sum(ch.isalpha() for ch in text) >= 2
    )


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
