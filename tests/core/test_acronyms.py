from cite.core.acronyms import defined_acronyms, spell_out

from tests.helpers import SEEDS


def test_finds_a_definition_by_its_initials():
    text = "the Collective Security Treaty (CST) of the Commonwealth of Independent States (CIS)."
    assert defined_acronyms(text) == {"CST": "Collective Security Treaty", "CIS": "Commonwealth of Independent States"}


def test_letters_may_come_from_inside_words():
    assert defined_acronyms("levels of tumor necrosis factor alpha (TNFa) rose") == {
        "TNFa": "tumor necrosis factor alpha"
    }


def test_parentheses_that_define_nothing_are_ignored():
    text = "Russia (RF) and the Soviet Union (Moscow) met in (1993) with (Russia, Ukraine) and NATO (NATO)."
    assert defined_acronyms(text) == {}


def test_definition_stops_at_the_sentence_start():
    # "Treaty" is not part of the long form: it sits in the previous sentence.
    assert defined_acronyms("It ended the Treaty. Security Council (SC) met.") == {"SC": "Security Council"}


def test_first_definition_wins():
    text = "Partnership for Peace (PFP). Later a Planning and Funding Program (PFP)."
    assert defined_acronyms(text) == {"PFP": "Partnership for Peace"}


def test_spells_out_uses_but_not_the_definition():
    acronyms = {"CIS": "Commonwealth of Independent States"}
    text = "the Commonwealth of Independent States (CIS). The CIS met; CISCO did not."
    assert spell_out(text, acronyms) == (
        "the Commonwealth of Independent States (CIS). The CIS (Commonwealth of Independent States) met; CISCO did not."
    )


def test_spell_out_without_acronyms_is_identity():
    assert spell_out("The CIS met.", {}) == "The CIS met."


def test_seed_article_defines_cis():
    text = (SEEDS / "004_9fdd055095dae421.txt").read_text(encoding="utf-8")
    assert defined_acronyms(text)["CIS"] == "Commonwealth of Independent States"
