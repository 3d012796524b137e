"""The JSON shapes other tools rely on (docs/api.md)."""

import json
from dataclasses import replace

from cite.core.serialize import answer_json, hit_json, hits_json
from cite.core.types import Answer, Citation, Claim, Hit, Passage

PASSAGE = Passage("p1", "rivers.md", 10, 52, "The Volga is the longest river in Europe.")
HIT = Hit(
    PASSAGE,
    0.123456789,
    {"dense": 0.71234567, "bm25": 3.5, "sentence": 0.8, "fused": 0.123456789},
    sentence=(10, 52),
)


def test_hit_json_has_the_documented_keys_and_rounds_scores():
    assert hit_json(HIT, 3) == {
        "rank": 3,
        "doc": "rivers.md",
        "start": 10,
        "end": 52,
        "page": None,
        "section": None,
        "text": "The Volga is the longest river in Europe.",
        "score": 0.123457,
        "scores": {"dense": 0.712346, "bm25": 3.5, "sentence": 0.8, "fused": 0.123457},
        "sentence": {"start": 10, "end": 52},
    }


def test_a_hit_without_a_best_sentence_has_no_sentence_key():
    plain = Hit(PASSAGE, 1.0, {"bm25": 1.0})
    assert "sentence" not in hit_json(plain, 1)
    assert [h["rank"] for h in hits_json([plain, HIT, plain])] == [1, 2, 3]
    assert hits_json(()) == []


def test_answer_json_has_the_documented_shape():
    answer = Answer(
        text="The Volga is the longest river in Europe [1].",
        citations=(Citation(1, "rivers.md", 10, 52, "The Volga is the longest river in Europe."),),
        claims=(Claim("The Volga is the longest river in Europe.", (1,), True, 0.912345678),),
        hits=(HIT,),
        confidence=0.87654321,
        abstained=False,
        question="Which river is the longest in Europe?",
    )
    data = answer_json(answer)
    assert list(data) == ["answer", "abstained", "confidence", "citations", "claims", "hits"]
    assert data["answer"] == answer.text and data["abstained"] is False and data["confidence"] == 0.8765
    assert data["citations"] == [
        {
            "n": 1,
            "doc": "rivers.md",
            "start": 10,
            "end": 52,
            "page": None,
            "last_page": None,
            "section": None,
            "quote": "The Volga is the longest river in Europe.",
        }
    ]
    assert data["claims"] == [
        {"text": "The Volga is the longest river in Europe.", "citations": [1], "supported": True, "support": 0.9123}
    ]
    assert data["hits"] == [hit_json(HIT, 1)]
    assert json.loads(json.dumps(data)) == data  # plain JSON all the way down


def test_an_abstention_has_no_answer_text_and_keeps_its_hits():
    answer = Answer(None, (), (), (HIT,), 0.2, True)
    data = answer_json(answer)
    assert data["answer"] is None and data["abstained"] is True
    assert data["citations"] == [] and data["claims"] == [] and len(data["hits"]) == 1


def test_page_and_section_are_given_where_the_format_has_them():
    paged = Passage("p2", "manual.pdf", 0, 20, "Arguments are lazy.", page=10, section="2 Objects > 2.1.8 Lazy")
    data = hit_json(Hit(paged, 1.0, {}), 1)
    assert (data["page"], data["section"]) == (10, "2 Objects > 2.1.8 Lazy")
    cited = Answer(
        "x [1]", (Citation(1, "manual.pdf", 0, 20, "Arguments are lazy.", 10, "2 Objects"),), (), (), 1, False
    )
    assert (answer_json(cited)["citations"][0]["page"], answer_json(cited)["citations"][0]["last_page"]) == (10, 10)
    across = Citation(1, "manual.pdf", 0, 20, "Arguments are lazy.", 10, "2 Objects", last_page=11)
    assert answer_json(replace(cited, citations=(across,)))["citations"][0]["last_page"] == 11
