"""The grading pipeline end to end, through nbgrader: release, a class of submissions, the report."""

import csv
import os
import pathlib
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder.config import lesson_ids
from tests.notebook_runner import graded_test_cells, solution_cells
from tests.submissions import put

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def autograder(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "autograder", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=1800)


def read_grades(out: pathlib.Path) -> dict[tuple[str, str], dict]:
    with (out / "grades.csv").open() as f:
        return {(row["student_id"], row["lesson"]): row for row in csv.DictReader(f)}


def with_solution(lesson: str, function: str, source: str) -> nbformat.NotebookNode:
    """The student notebook of ``lesson`` with one function's solution cell filled in."""
    nb = nbformat.read(ROOT / "lessons" / lesson / f"{lesson}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == function:
            cell.source = source
    return nb


def test_release_check_passes():
    result = autograder("release", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_release_check_notices_a_stale_lesson(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(ROOT / "solutions", course / "solutions")
    shutil.copytree(ROOT / "lessons", course / "lessons")
    stale = course / "lessons" / "02_convolution" / "02_convolution.ipynb"
    stale.write_text(stale.read_text().replace("Lesson 02", "Lesson 2"))
    env = {**os.environ, "CNN_COURSE_ROOT": str(course)}
    result = autograder("release", "--check", env=env)
    assert result.returncode == 1 and "lessons/02_convolution/02_convolution.ipynb" in result.stdout
    assert autograder("release", env=env).returncode == 0
    assert autograder("release", "--check", env=env).returncode == 0


def test_usage_errors_exit_nonzero_with_one_line(tmp_path):
    result = autograder("grade", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert result.returncode != 0 and "no such folder" in result.stderr
    (tmp_path / "subs" / "alice" / "02_convolution").mkdir(parents=True)
    result = autograder("grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--lessons", "99_nothing")
    assert result.returncode != 0 and "unknown lesson 99_nothing" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_class_of_lesson_02(tmp_path):
    lesson = "02_convolution"
    subs, out = tmp_path / "submitted", tmp_path / "out"
    reference = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    put(subs, "reference", lesson, reference)
    put(subs, "untouched", lesson, nbformat.read(ROOT / "lessons" / lesson / f"{lesson}.ipynb", as_version=4))
    # Only correlate2d right: the others stay unimplemented.
    put(subs, "partial", lesson, with_solution(lesson, "correlate2d", solution_cells(lesson)["correlate2d"]))
    # A plausible wrong answer: the kernel flipped (convolution instead of correlation).
    flipped = solution_cells(lesson)["correlate2d"].replace("* kernel)", "* kernel[::-1, ::-1])")
    assert flipped != solution_cells(lesson)["correlate2d"]
    put(subs, "flipped", lesson, with_solution(lesson, "correlate2d", flipped))
    # A correct answer that prints a warning to stderr keeps its points.
    noisy = solution_cells(lesson)["correlate2d"].replace(
        "    ### BEGIN SOLUTION", "    import warnings; warnings.warn('just a warning')\n    ### BEGIN SOLUTION")
    put(subs, "noisy", lesson, with_solution(lesson, "correlate2d", noisy))
    # Broken submissions: each gets a row with a reason, and the run goes on.
    put(subs, "badjson", lesson, text='{"cells": [')
    put(subs, "renamed", lesson, reference, name="my_convolution.ipynb")
    (subs / "absent").mkdir()
    killer = with_solution(lesson, "convolve2d", "import os\nos._exit(0)")
    put(subs, "killer", lesson, killer)

    result = autograder("grade", str(subs), "--out", str(out), "--jobs", "2", "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    grades = read_grades(out)
    row = lambda student: grades[(student, lesson)]  # noqa: E731
    assert row("reference")["status"] == "graded" and row("reference")["score"] == row("reference")["max_score"]
    assert row("untouched")["status"] == "graded" and float(row("untouched")["score"]) == 0
    assert 0 < float(row("partial")["score"]) < float(row("partial")["max_score"])
    assert float(row("flipped")["score"]) < float(row("partial")["score"])
    assert row("noisy")["score"] == row("partial")["score"]
    assert row("badjson")["status"] == "failed" and "not valid JSON" in row("badjson")["reason"]
    # A lone notebook under another name is graded, and the reason says which file (COURSE_SPEC).
    assert row("renamed")["status"] == "graded" and row("renamed")["score"] == row("renamed")["max_score"]
    assert row("renamed")["reason"] == "graded 'my_convolution.ipynb'"
    assert row("absent")["status"] == "missing"
    assert row("killer")["status"] in ("failed", "graded") and "kernel died" in row("killer")["reason"]
    assert float(row("killer")["score"]) < float(row("killer")["max_score"])

    feedback = out / "feedback" / "flipped" / lesson / f"{lesson}.html"
    html = feedback.read_text()
    assert "values differ from the expected result" in html  # the learner sees what is wrong...
    assert "BEGIN HIDDEN TESTS" not in html and "_reference_correlate2d" not in html  # ...not the hidden tests
    assert "default_rng(202)" not in html
    assert "not run when grading: a demonstration" in html  # demo cells: no grade depends on them
    assert all("alt=" in tag for tag in re.findall(r"<img[^>]*>", html))  # every picture has alt text

    # Re-running is idempotent: same grades, gradebook intact.
    again = autograder("grade", str(subs), "--out", str(out), "--jobs", "2", "--quiet")
    assert again.returncode == 0
    assert read_grades(out) == grades


@pytest.mark.slow
def test_every_lesson_reference_full_marks_untouched_zero(tmp_path):
    subs, out = tmp_path / "submitted", tmp_path / "out"
    lessons = [x for x in lesson_ids(ROOT) if solution_cells(x)]
    for lesson in lessons:
        put(subs, "reference", lesson, nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4))
        put(subs, "untouched", lesson, nbformat.read(ROOT / "lessons" / lesson / f"{lesson}.ipynb", as_version=4))
    result = autograder("grade", str(subs), "--out", str(out), "--jobs", "2", "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    grades = read_grades(out)
    for lesson in lessons:
        ref, untouched = grades[("reference", lesson)], grades[("untouched", lesson)]
        # Lesson 08's checkpoint is measured on the CIFAR-10 test set, which this machine lacks.
        unmeasurable = {k: p for k, (_, p) in graded_test_cells(lesson).items() if k == "test_cifar10_checkpoint"}
        expected = float(ref["max_score"]) - sum(unmeasurable.values())
        assert ref["status"] == "graded" and float(ref["score"]) == expected > 0, (lesson, ref)
        assert all(k in ref["reason"] for k in unmeasurable), ref
        assert untouched["status"] == "graded" and float(untouched["score"]) == 0, (lesson, untouched)


@pytest.mark.slow
def test_works_from_a_venv_python_without_activation(tmp_path):
    """nbgrader runs `alembic` by name; the grader must find it without the venv on PATH.

    Also the one grading run with kernels started from nothing (CNN_GRADER_PRELOAD=0)
    rather than forked from the warm zygote that every other grading test uses."""
    lesson = "02_convolution"
    subs = tmp_path / "submitted"
    put(subs, "reference", lesson, nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV",)}
    env["PATH"] = "/usr/bin:/bin"
    env["CNN_GRADER_PRELOAD"] = "0"
    result = autograder("grade", str(subs), "--out", str(tmp_path / "out"), "--quiet", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    row = read_grades(tmp_path / "out")[("reference", lesson)]
    assert row["status"] == "graded" and row["score"] == row["max_score"]
