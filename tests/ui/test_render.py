from cite.core.types import Hit, Passage
from cite.ui.render import document_view, hits_list


def test_document_view_highlights_a_sentence_inside_its_passage_and_escapes_html():
    text = "Intro. <b>Bold</b> claim here. Outro."
    html = document_view("d.txt", text, [(7, 30)], (7, 30))
    assert '<mark class="current">&lt;b&gt;Bold&lt;/b&gt; claim here.</mark>' in html
    nested = document_view("d.txt", text, [(0, 30)], (7, 30))
    assert '<mark class="cited">Intro. </mark><mark class="current">' in nested
    assert "<b>" not in html


def test_search_card_marks_the_best_sentence():
    text = "First sentence here. The treaty was signed in 1993. Last one."
    hit = Hit(Passage("p", "d.txt", 0, len(text), text), 1.0, {"dense": 0.5}, sentence=(21, 51))
    html = hits_list([hit], {"d.txt": text})
    assert "<mark>The treaty was signed in 1993.</mark>" in html


def test_place_cites_page_and_section_where_the_format_has_them():
    from cite.ui.render import place

    assert place("manual.pdf", 80604, 80764, 10, "2 Objects > 2.1.8 Lazy arguments") == (
        "manual.pdf p. 10, §2.1.8 Lazy arguments [80604-80764]"
    )
    assert place("slides.pptx", 0, 9, 3) == "slides.pptx p. 3 [0-9]"
    assert place("notes.txt", 5, 40) == "notes.txt:5-40"
    assert place("manual.pdf", 100, 300, 16, "", last_page=17) == "manual.pdf pp. 16–17 [100-300]"
    assert place("manual.pdf", 100, 300, 16, "", last_page=16) == "manual.pdf p. 16 [100-300]"
