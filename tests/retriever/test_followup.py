from cite.retriever.followup import standalone_question


def test_follow_up_carries_the_previous_subject():
    asked = standalone_question("And who opposed it?", ["Who proposed the creation of a CSO joint command?"])
    assert asked.startswith("And who opposed it?")
    assert "CSO" in asked and "command" in asked and "Who" not in asked.split("(")[1]


def test_standalone_questions_are_left_alone():
    question = "When was the Collective Security Treaty first invoked?"
    assert standalone_question(question, ["Who is Zemsky?"]) == question
    assert standalone_question("And who opposed it?", []) == "And who opposed it?"


def test_words_already_in_the_question_are_not_repeated():
    asked = standalone_question("When was it signed?", ["When was the treaty signed by Russia?"])
    assert asked == "When was it signed? (treaty Russia)"
