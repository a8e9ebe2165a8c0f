"""cnn_course.course: the catalogue and the start page's "check your work" cell."""

import shutil

import nbformat

from autograder.config import lesson_ids
from cnn_course import course
from tests.notebook_runner import ROOT


def test_catalogue_is_in_course_order_and_complete():
    ids = [lesson.id for lesson in course.ALL]
    assert ids == sorted(ids) and ids[0] == "00_start_here" and len(course.LESSONS) == 9
    assert set(lesson_ids(ROOT)) <= set(ids)
    for lesson in course.LESSONS:
        assert lesson.minutes > 0 and lesson.objectives and lesson.functions
        for p in lesson.prerequisites:  # lesson numbers refer to earlier lessons
            assert not p.isdigit() or p < lesson.number


def test_progress_reads_saved_notebooks(tmp_path):
    lesson = "02_convolution"
    (tmp_path / lesson).mkdir()
    student = tmp_path / lesson / f"{lesson}.ipynb"
    shutil.copy(ROOT / "lessons" / lesson / f"{lesson}.ipynb", student)
    fresh = {p.lesson: p for p in course.progress(tmp_path)}[lesson]
    assert fresh.found and fresh.exercises == list(course.BY_ID[lesson].functions) == fresh.open
    n = len(course.BY_ID[lesson].functions)
    assert f"0/{n} exercises written" in fresh.summary()

    # the learner writes the first function, runs its tests; the second test cell fails
    nb = nbformat.read(student, as_version=4)
    solutions = {c.metadata.nbgrader["grade_id"]: c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")}
    solutions["correlate2d"].source = "def correlate2d(image, kernel):\n    return image"
    for c in nb.cells:
        gid = c.metadata.get("nbgrader", {}).get("grade_id", "")
        if gid in ("test_correlate2d", "test_convolve2d"):
            c.execution_count = 7
            if gid == "test_convolve2d":
                c.outputs = [nbformat.v4.new_output("error", ename="NotImplementedError", evalue="", traceback=[])]
    nbformat.write(nb, student)
    item = course.lesson_progress(student, lesson)
    assert item.open == [f for f in course.BY_ID[lesson].functions if f != "correlate2d"]
    assert item.failed_tests == ["test_convolve2d"]
    assert f"1/{n} exercises written" in item.summary() and "test_convolve2d" in item.summary()


def test_progress_without_notebooks_or_with_broken_ones(tmp_path):
    (tmp_path / "02_convolution").mkdir()
    (tmp_path / "02_convolution" / "02_convolution.ipynb").write_text("{not json")
    assert all(not p.found and "not opened yet" in p.summary() for p in course.progress(tmp_path))


def test_path_and_readme_tables_mention_every_lesson():
    path, readme = course.path_markdown(), course.readme_markdown()
    for lesson in course.LESSONS:
        assert f"../{lesson.id}/{lesson.id}.ipynb" in path and f"lessons/{lesson.id}/{lesson.id}.ipynb" in readme
    assert "(GPU)" in path and path.count("(GPU)") == 1


def test_released_questions_name_their_answer_and_count_as_unanswered(tmp_path):
    from nbgrader.utils import compute_checksum

    lesson = "02_convolution"
    released = nbformat.read(ROOT / "lessons" / lesson / f"{lesson}.ipynb", as_version=4)
    questions = [c for c in released.cells if course.is_question(c.metadata.get("nbgrader", {}).get("grade_id", ""))]
    assert len(questions) >= 4
    for cell in questions:
        gid = cell.metadata.nbgrader["grade_id"]
        assert f"\n{gid} = ...  # your prediction" in "\n" + cell.source and "NotImplementedError" not in cell.source
        assert cell.metadata.nbgrader["checksum"] == compute_checksum(cell)
    (tmp_path / lesson).mkdir()
    shutil.copy(ROOT / "lessons" / lesson / f"{lesson}.ipynb", tmp_path / lesson / f"{lesson}.ipynb")
    fresh = {p.lesson: p for p in course.progress(tmp_path)}[lesson]
    assert fresh.unanswered == fresh.questions == [c.metadata.nbgrader["grade_id"] for c in questions]
    assert f"0/{len(questions)} questions answered" in fresh.summary()
