"""Notebook hygiene: solutions/ is stored clean, and every lesson's nbgrader metadata is consistent.

nbgrader trusts the metadata blindly: a duplicated grade_id silently merges two cells in
the gradebook, an unlocked test cell can be edited by the learner, a test cell with 0
points grades nothing. These checks catch that before a release.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re

import nbformat
import pytest

from autograder.config import lesson_ids
from cnn_course import course

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSONS = lesson_ids(ROOT)
HEADER_IDS = {"colab_badge", "colab_setup"}

spec = importlib.util.spec_from_file_location("normalize_notebooks", ROOT / "tools" / "normalize_notebooks.py")
normalize = importlib.util.module_from_spec(spec)
spec.loader.exec_module(normalize)


def _path(lesson: str) -> pathlib.Path:
    return ROOT / "solutions" / lesson / f"{lesson}.ipynb"


def _cells(lesson: str):
    nb = nbformat.read(_path(lesson), as_version=4)
    return nb, [(i, c, c.metadata.get("nbgrader", {})) for i, c in enumerate(nb.cells)]


def _first_code_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line
    return ""


def test_there_are_lessons():
    assert "02_convolution" in LESSONS and "00_start_here" in LESSONS, LESSONS


@pytest.mark.parametrize("lesson", LESSONS)
def test_stored_without_outputs_or_execution_counts(lesson):
    _, cells = _cells(lesson)
    dirty = [f"cell {i}" for i, c, _ in cells if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{lesson}: outputs or execution counts in {dirty}; run tools/normalize_notebooks.py"


@pytest.mark.parametrize("lesson", LESSONS)
def test_normalized_with_the_current_header(lesson):
    """Kernel spec, metadata, and the Colab/Binder header exactly as tools/normalize_notebooks.py writes them."""
    path = _path(lesson)
    nb = nbformat.reads(path.read_text(), as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{lesson}: kernel is not python3"
    assert normalize.dumps(normalize.normalized(nb, lesson)) == path.read_text(), \
        f"{lesson} is not normalized (stale Colab header?): python tools/normalize_notebooks.py {path.relative_to(ROOT)}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_nbgrader_metadata_is_consistent(lesson):
    _, cells = _cells(lesson)
    problems, seen = [], {}
    for i, cell, meta in cells:
        if not meta:
            continue
        where = f"cell {i} ({meta.get('grade_id', 'no grade_id')})"
        if meta.get("schema_version") != 3:
            problems.append(f"{where}: nbgrader schema_version is {meta.get('schema_version')!r}, not 3")
        grade_id = meta.get("grade_id")
        if not grade_id or not re.fullmatch(r"[A-Za-z0-9_\-]+", grade_id):
            problems.append(f"{where}: grade_id must be letters, digits, _ or -")
        elif grade_id in seen:
            problems.append(f"{where}: grade_id {grade_id!r} already used by cell {seen[grade_id]}")
        else:
            seen[grade_id] = i
        graded, solution = bool(meta.get("grade")), bool(meta.get("solution"))
        if graded and not solution:
            if not meta.get("locked"):
                problems.append(f"{where}: a graded test cell must be locked")
            if not (isinstance(meta.get("points"), (int, float)) and meta["points"] > 0):
                problems.append(f"{where}: a graded test cell needs points > 0, has {meta.get('points')!r}")
        if solution:
            if cell.cell_type != "code":
                problems.append(f"{where}: solution cells here are code cells")
            elif not course.is_question(grade_id) and not _first_code_line(cell.source).startswith(f"def {grade_id}("):
                problems.append(f"{where}: a solution cell starts with 'def {grade_id}(' (its grade_id is the function)")
            if "### BEGIN SOLUTION" not in cell.source or "### END SOLUTION" not in cell.source:
                problems.append(f"{where}: no ### BEGIN SOLUTION / ### END SOLUTION region")
            if meta.get("locked"):
                problems.append(f"{where}: a solution cell cannot be locked")
        if grade_id in HEADER_IDS and (graded or solution or not meta.get("locked")):
            problems.append(f"{where}: the header cells are locked and not graded")
        if "### BEGIN HIDDEN TESTS" in cell.source and not (graded and not solution):
            problems.append(f"{where}: hidden tests belong in a graded test cell")
    assert not problems, f"{lesson}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_lesson_is_in_the_course_catalogue(lesson):
    assert lesson in course.BY_ID, f"add {lesson} to cnn_course/course.py (README table, start page, GPU flag)"


def test_start_here_has_no_graded_cells_and_shows_the_current_path():
    nb, cells = _cells("00_start_here")
    graded = [meta["grade_id"] for _, _, meta in cells if meta.get("grade") or meta.get("solution")]
    assert not graded, f"the start notebook grades nothing, but has {graded}"
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert course.path_markdown() in markdown, \
        "the path table in 00_start_here differs from cnn_course.course.path_markdown(); paste the new one in"
    for lesson in course.LESSONS:
        assert f"../{lesson.id}/{lesson.id}.ipynb" in markdown


@pytest.mark.parametrize("lesson", [x for x in LESSONS if x != course.START.id])
def test_catalogue_agrees_with_the_lesson(lesson):
    """The README table and the start page (built from cnn_course/course.py) say what the lesson says."""
    entry = course.BY_ID.get(lesson)
    assert entry, f"add {lesson} to cnn_course/course.py"
    nb, cells = _cells(lesson)
    functions = {meta["grade_id"] for _, _, meta in cells
                 if meta.get("solution") and not course.is_question(meta["grade_id"])}  # answers are not functions
    assert functions == set(entry.functions), \
        f"{lesson}: graded functions {sorted(functions)}, catalogue {sorted(entry.functions)}"
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    title = re.search(r"^# Lesson \d\d\s*\W\s*(.+)$", markdown, flags=re.M)
    if title:
        assert title.group(1).strip() == entry.title, \
            f"{lesson} is titled {title.group(1).strip()!r}, cnn_course/course.py says {entry.title!r}"
    stated = re.search(r"\*\*Time\*\*:\s*about\s+(\d+)\s+minutes", markdown)
    if stated:
        assert int(stated.group(1)) == entry.minutes, \
            f"{lesson} says about {stated.group(1)} minutes, cnn_course/course.py says {entry.minutes}"
