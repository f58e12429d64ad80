"""The exercises grade themselves: the full pass/reject matrix.

Every exercise's reference solution passes its checker, and every wrong answer on record
is rejected with a hint that names the mistake. The reader's four misconceptions
(../shared/READER.md) are among the recorded wrong answers, each in the exercise the
questions page links to it.
"""

import re
from pathlib import Path

import pytest

from transformer_lite.exercises import EXERCISES, Verdict, check

ROOT = Path(__file__).resolve().parent.parent

# exercise -> a word of the hint that answers the misconception
MISCONCEPTIONS = {
    # "√d_k is the length of the vector"
    "ch2.scale": "length",
    # "the query at t may attend to k_1 ... k_{t-1} only"
    "ch3.causal": "itself",
    # "LayerNorm is batch norm by layer"
    "ch5.layernorm": "batch",
    # "the only tunable parameters are N and d_model"
    "ch6.hyperparameters": "Table 3",
}


def test_at_least_twenty_exercises_in_every_chapter():
    assert len(EXERCISES) >= 20, sorted(EXERCISES)
    chapters = {name.split(".")[0] for name in EXERCISES}
    assert {f"ch{n}" for n in range(1, 8)} <= chapters, chapters
    for name, exercise in EXERCISES.items():
        assert exercise.solve is not None, f"{name} has no reference solution"
        assert exercise.wrong, f"{name} records no wrong answer"


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_reference_solution_passes(name):
    verdict = check(name, EXERCISES[name].solve())
    assert verdict.passed, verdict


@pytest.mark.parametrize(
    "name, index",
    [
        (name, index)
        for name in sorted(EXERCISES)
        for index in range(len(EXERCISES[name].wrong))
    ],
)
def test_recorded_wrong_answer_is_rejected_with_its_hint(name, index):
    answer, word = EXERCISES[name].wrong[index]
    verdict = check(name, answer)
    assert not verdict.passed, f"{name} accepts the wrong answer {answer!r}"
    assert word.lower() in verdict.message.lower(), (
        f"{name}: the hint for {answer!r} should mention {word!r}: "
        f"{verdict.message}"
    )


@pytest.mark.parametrize("name, word", MISCONCEPTIONS.items())
def test_each_misconception_is_a_recorded_wrong_answer(name, word):
    assert name in EXERCISES, f"no exercise {name} for the misconception"
    hints = [
        check(name, answer).message for answer, _ in EXERCISES[name].wrong
    ]
    assert any(word.lower() in hint.lower() for hint in hints), hints


def test_no_answer_and_unknown_exercise():
    verdict = check("ch0.steps", ...)
    assert isinstance(verdict, Verdict) and not verdict
    assert "No answer yet" in repr(verdict)
    with pytest.raises(KeyError, match="no exercise 'ch9.nothing'"):
        check("ch9.nothing", 1)


def test_an_answer_of_the_wrong_type_is_graded_not_raised():
    verdict = check("ch0.steps", "sixty-four")
    assert not verdict and "could not be graded" in verdict.message


def test_each_misconception_links_its_exercise():
    page = (ROOT / "book" / "questions.md").read_text(encoding="utf-8")
    notes = page.split("## Notes that went astray", 1)[1]
    for name in MISCONCEPTIONS:
        label = "ex-" + name.replace(".", "-")
        assert f"{{ref}}`{label}`" in notes, f"no link to {label}"
        chapter = name.split(".")[0].removeprefix("ch")
        notebook = next((ROOT / "notebooks").glob(f"0{chapter}_*.py"))
        assert re.search(
            rf"^# \({re.escape(label)}\)=$", notebook.read_text(), re.M
        ), f"{notebook.name} has no label {label}"
