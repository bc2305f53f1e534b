"""The verdict parser and the log-probability reader (pure logic, table-driven)."""

from __future__ import annotations

import math

import pytest

from kto_build.nodes.judge.template import DEFAULT_TEMPLATE, render, unknown_placeholders
from kto_build.nodes.judge.verdict import label_from_logprobs, parse_verdict, rationale_of, read_verdict

YN = ["Yes", "No"]
GRADES = ["good", "not good", "unsure"]


@pytest.mark.parametrize(("text", "labels", "expected"), [
    ("Yes", YN, "Yes"),
    (" yes.", YN, "Yes"),
    ("No\nThe second line has five syllables too many.", YN, "No"),
    ("**Yes** - lovely imagery", YN, "Yes"),
    ("Label: No", YN, "No"),
    ("I think it is fine.\nAnswer: Yes", YN, "Yes"),
    ("Verdict = no", YN, "No"),
    ("Yes or No?", YN, None),                       # names both: never a guess
    ("Answer: Yes, no, maybe", YN, None),
    ("Maybe", YN, None),
    ("", YN, None),
    (None, YN, None),
    ("Yesterday was nice", YN, None),               # whole words only
    ("not good", GRADES, "not good"),               # the longer label is not also 'good'
    ("It is good", GRADES, "good"),
    ("Unsure.", GRADES, "unsure"),
    ("good, not good", GRADES, None),
])
def test_parse_verdict(text, labels, expected):
    assert parse_verdict(text, labels) == expected


def test_rationale_drops_the_label_line():
    assert rationale_of("No\nToo long.", "No") == "Too long."
    assert rationale_of("Fine work.\nAnswer: Yes", "Yes") == "Fine work."
    assert rationale_of("Yes", "Yes") is None


def alts(**probs):
    return [{"token": t.replace("_", " "), "logprob": math.log(p)} for t, p in probs.items()]


@pytest.mark.parametrize(("logprobs", "labels", "expected"), [
    ([alts(_Yes=0.6, _No=0.2, _The=0.2)], YN, ("Yes", 0.75)),
    ([alts(_No=0.5, no=0.1, Yes=0.2)], YN, ("No", 0.75)),            # case and space variants add up
    ([alts(_Maybe=0.9, _Perhaps=0.1)], YN, None),                     # no label token at all
    ([alts(_=0.9, _Yes=0.05)], YN, ("Yes", 1.0)),                      # only a blank-led position: its labels decide
    ([alts(_=0.9, _Yes=0.05), alts(_No=0.8, _Yes=0.2)], YN, ("No", 0.8)),  # skip the blank position
    ([alts(_Y=0.3, _N=0.1)], YN, ("Yes", 0.75)),                     # a token that starts one label
    ([alts(_not=0.4, _good=0.4, _un=0.2)], GRADES, ("good", 0.4)),  # a tie goes to the label listed first
    ([], YN, None),
    (None, YN, None),
])
def test_label_from_logprobs(logprobs, labels, expected):
    got = label_from_logprobs(logprobs, labels)
    if expected is None:
        assert got is None
    else:
        assert got[0] == expected[0] and got[1] == pytest.approx(expected[1])


def test_read_verdict_prefers_logprobs_and_falls_back_to_text():
    assert read_verdict("No", [alts(_Yes=0.9, _No=0.1)], YN) == ("Yes", pytest.approx(0.9), "ok")
    assert read_verdict("No", None, YN) == ("No", None, "ok")
    assert read_verdict("dunno", [alts(_dunno=1.0)], YN) == (None, None, "unparsed")


def test_default_template_names_question_labels_and_ends_in_answer():
    text = render(DEFAULT_TEMPLATE, prompt="Write {completion}", completion="a haiku", labels=["Yes", "No", "Meh"],
                  question="Do you like it?")
    assert "Do you like it?" in text and "Yes, No or Meh" in text and "Write {completion}" in text
    assert text.endswith("Answer:")
    assert unknown_placeholders("{prompt} {completon} {labels}") == ["completon"]
