"""A one-document collection answers what its document plainly states (issue #27): a two-page
scanned PDF, read by OCR, indexed alone, asked with the real model. In an index of one passage
every word it holds looked common, and a question its passage answers word for word was refused."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from cite.core.embedder import default_embedder
from cite.ui.cli import main

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf")
PAGES = [
    "Harbor Survey Report\n\n"
    "The survey of the northern harbor was carried out in the spring of 2019. It was led by Captain "
    "Miriam Okafor of the coastal authority, with a crew of six divers and two engineers. The team "
    "measured the depth of the channel at forty points and photographed the old stone pier.\n\n"
    "The channel had silted up since the last survey in 2004. Near the pier the water was only three "
    "meters deep at low tide, which is too shallow for the ferries that call there in summer.",
    "Recommendations\n\n"
    "The report recommends dredging the channel to a depth of six meters before the next ferry season. "
    "It also recommends repairing the north face of the stone pier, where several blocks have shifted.\n\n"
    "The cost of the dredging was estimated at 2.4 million euros. The harbor board approved the plan in "
    "October 2019, and the work began the following spring.",
]
ANSWERED = {
    "Who led the survey of the northern harbor?": "Miriam Okafor",
    "How much did the dredging cost?": "2.4 million euros",
    "When did the harbor board approve the plan?": "October 2019",
    "How deep was the water near the pier?": "three meters deep",
    "What does the report recommend?": "dredging the channel",
}
REFUSED = ["Who paid for the new ferry terminal?", "What is the capital of France?"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed (make ocr)"),
    pytest.mark.skipif(not FONT.exists(), reason="the DejaVu font is not installed"),
]


def scanned_pdf(path: Path) -> Path:
    """The pages as 200-dpi images without a text layer, as a scanner makes them."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(FONT), 34)
    images = []
    for text in PAGES:
        page = Image.new("L", (1700, 2200), 255)
        draw, y = ImageDraw.Draw(page), 160
        for paragraph in text.split("\n\n"):
            for line in textwrap.wrap(paragraph, 70):
                draw.text((150, y), line, font=font, fill=0)
                y += 52
            y += 40
        images.append(page)
    images[0].save(path, "PDF", resolution=200.0, save_all=True, append_images=images[1:])
    return path


def test_a_one_document_collection_answers_its_obvious_questions(tmp_path):
    from cite.retriever.engine import Engine

    index = tmp_path / "index"
    assert main(["index", str(scanned_pdf(tmp_path / "harbor.pdf")), "--index", str(index)]) == 0
    engine = Engine(index, default_embedder())
    for question, said in ANSWERED.items():
        answer = engine.ask(question)
        assert not answer.abstained, (question, answer.confidence)
        assert any(said in " ".join(c.quote.split()) for c in answer.citations), question
        assert all(c.page in (1, 2) for c in answer.citations)
    for question in REFUSED:
        assert engine.ask(question).abstained, question
