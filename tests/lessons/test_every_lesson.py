"""For every lesson: the tests accept every correct implementation and reject plausible wrong ones.

Each lesson's cases live beside its own tests in ``tests/lessons/test_<id>.py``:
``ALTERNATIVES`` (label -> {function: source}), different correct implementations that
must pass every test cell, and ``MUTANTS`` (function -> {label: source}), mistakes
learners make, each of which must fail its function's hidden test cells (the ones that
decide the grade).
"""

import importlib
import pathlib

import pytest

from autograder.config import lesson_ids
from tests.notebook_runner import answers, failed, functions, questions, results_for, run_tests, solution_cells

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
LESSONS = [lesson for lesson in lesson_ids(ROOT) if solution_cells(lesson)]
CASES = {lesson: importlib.import_module(f"tests.lessons.test_{lesson}") for lesson in LESSONS}

# Cells that cannot pass on a machine without the data they measure (lesson 08's checkpoint
# is evaluated on the CIFAR-10 test set); they must fail saying so, never pass silently.
NEEDS_CIFAR10 = {"test_cifar10_checkpoint"}


def decisive_failures(results: dict) -> dict:
    out = failed(results)
    for grade_id in NEEDS_CIFAR10 & set(out):
        if out[grade_id].startswith("DataNotAvailable"):
            del out[grade_id]
    return out


@pytest.mark.parametrize("lesson", LESSONS)
def test_reference_solution_passes_every_test(lesson):
    assert decisive_failures(run_tests(lesson)) == {}


@pytest.mark.parametrize("lesson,label", [(x, a) for x in LESSONS for a in sorted(CASES[x].ALTERNATIVES)])
def test_alternative_correct_implementation_passes(lesson, label):
    assert decisive_failures(run_tests(lesson, CASES[lesson].ALTERNATIVES[label])) == {}


@pytest.mark.parametrize("lesson,function,label",
                         [(x, f, m) for x in LESSONS for f in CASES[x].MUTANTS for m in CASES[x].MUTANTS[f]])
def test_mutant_fails_hidden_tests(lesson, function, label):
    results = results_for(lesson, function, run_tests(lesson, {function: CASES[lesson].MUTANTS[function][label]}))
    hidden = {k: v for k, v in results.items() if "hidden" in k}
    assert hidden and all(v is not None for v in hidden.values()), f"{label!r} was not caught: {results}"


def test_every_graded_function_has_mutants_and_alternatives():
    for lesson in LESSONS:
        graded = set(functions(lesson))
        weak = {f: len(CASES[lesson].MUTANTS.get(f, {})) for f in graded if len(CASES[lesson].MUTANTS.get(f, {})) < 3}
        assert not weak, f"{lesson}: fewer than 3 mutants for {weak}"
        for f in graded:
            alternatives = [a for a in CASES[lesson].ALTERNATIVES.values() if f in a]
            assert len(alternatives) >= 2, f"{lesson}: fewer than 2 alternative implementations of {f}"


# "Predict, then check" questions (COURSE_SPEC): at least four per lesson 01-09; the visible test
# checks the answer's form only, the hidden test its value, which the notebook computes.

def _wrong(answer):
    """A well-formed answer that is not ``answer``."""
    if isinstance(answer, bool):
        return not answer
    if isinstance(answer, int):
        return answer + 1
    if isinstance(answer, float):
        return answer * 1.5 + 1.0
    if isinstance(answer, (tuple, list)):
        return (int(answer[0]) + 1, *(int(v) for v in answer[1:]))
    if isinstance(answer, str):
        return "b" if answer.strip().lower() == "a" else "a"
    raise TypeError(f"an answer of type {type(answer).__name__}")


QUESTION_LESSONS = [x for x in LESSONS if x[:2] != "00"]


@pytest.mark.parametrize("lesson", QUESTION_LESSONS)
def test_every_lesson_asks_four_questions(lesson):
    assert len(questions(lesson)) >= 4, f"{lesson} has {len(questions(lesson))} questions"


@pytest.mark.parametrize("lesson", [x for x in QUESTION_LESSONS if questions(x)])
def test_questions_judge_the_value_in_hidden_tests_and_the_form_in_visible_ones(lesson):
    for q, answer in answers(lesson).items():
        assert isinstance(answer, (bool, int, float, str, tuple, list)), (q, answer)
        wrong = f"{q} = {_wrong(answer)!r}"
        assert run_tests(lesson, {q: wrong})[f"test_{q}"] is not None, f"{lesson}: a wrong answer to {q} passes"
        visible = run_tests(lesson, {q: wrong}, folder="lessons")[f"test_{q}"]
        assert visible is None, f"{lesson}: the visible test of {q} judges more than the form: {visible}"
        assert run_tests(lesson, {q: f"{q} = None"}, folder="lessons")[f"test_{q}"] is not None
