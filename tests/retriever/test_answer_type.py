import pytest
from cite.retriever.answer_type import expected_type, holds_type


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Who proposed the creation of a CSO joint command?", "agent"),
        ("Which presidents supported the joint command proposal?", "agent"),
        ("From whom did Putin take over the chairmanship?", "agent"),
        ("When was the Collective Security Treaty first invoked?", "date"),
        ("In which year did Georgia leave the CIS?", "date"),
        ("By what date must the working group draft its proposals?", "date"),
        ("Where did Putin meet his CIS counterparts?", "place"),
        ("What is the capital of Mongolia?", "place"),
        ("How many countries signed the original CST in 1993?", "number"),
        ("What is the population of Kazakhstan?", "number"),
        ("How long may an identifier be?", "number"),
        ("Why could Moscow not act as the region's security manager?", "reason"),
        ("And why did they refuse?", "reason"),
        ("What did Anatoliy Chubays argue for?", "other"),
        ("How do the CSTO and EAEC differ from the Warsaw Pact?", "other"),
        # An opening clause sets the scene; the main clause says what is asked.
        ("When I combine two result sets with UNION, do repeated rows appear twice?", "other"),
        ("When sorting, are empty entries treated as bigger or smaller?", "other"),
        ("If the treaty lapses, who guards the border?", "agent"),
        ("When did Russia, Belarus and Kazakhstan sign the treaty?", "date"),
        ("When, exactly, was it signed?", "date"),
    ],
)
def test_expected_type_reads_the_question_words(question, expected):
    assert expected_type(question) == expected


@pytest.mark.parametrize(
    ("sentence", "answer_type", "holds"),
    [
        ("The CST had never been invoked until October 2.", "date", True),
        ("It was signed in 1993 in Tashkent.", "date", True),
        ("The treaty was never invoked.", "date", False),
        ("Nine countries signed it.", "number", True),
        ("It costs 4.5% of the budget.", "number", True),
        ("The proposal ran into resistance.", "number", False),
        ("Only Putin and Belarusan President Alyaksandr Lukashenka supported it.", "agent", True),
        ("the proposal ran into resistance from some of the attending presidents.", "agent", False),
        ("Publicly, all of them made terse, cautious remarks, in which they did not mention it.", "agent", False),
        ("They refused because the treaty had no budget.", "reason", True),
        ("They refused.", "reason", False),
        ("The leaders met at a ski resort near Almaty.", "place", True),
        ("Anything at all.", "other", True),
    ],
)
def test_holds_type_finds_the_kind_of_answer(sentence, answer_type, holds):
    assert holds_type(sentence, answer_type) is holds
