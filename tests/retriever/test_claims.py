from cite.core.types import Citation
from cite.retriever.claims import check_claims, split_claims, support_score

from tests.helpers import FakeEmbedder


def test_split_claims_assigns_markers_to_their_sentence():
    text = "The CST was signed in 1993. [1][2] Three states left it. [3] No marker here."
    assert split_claims(text) == [
        ("The CST was signed in 1993.", (1, 2)),
        ("Three states left it.", (3,)),
        ("No marker here.", ()),
    ]


def test_verbatim_quote_is_supported_exactly_even_across_line_breaks():
    quote = "provide secu-\nrity and\nstability"
    assert support_score("provide security and stability", [quote], None) == 1.0


def test_generated_claims_are_checked_against_what_they_cite():
    citations = [
        Citation(1, "d", 0, 40, "Nine countries signed the original CST in 1993."),
        Citation(2, "d", 41, 90, "Bees make honey from nectar."),
    ]
    claims = check_claims(
        [
            ("Nine countries signed the CST in 1993.", (1,)),
            ("The CST was signed on the Moon.", (2,)),
            ("Unsourced.", ()),
        ],
        citations,
        FakeEmbedder(),
    )
    assert [c.supported for c in claims] == [True, False, False]
    assert claims[0].support > 0.6 > claims[1].support
    assert claims[2].citations == () and claims[2].support == 0.0
