"""``export``: the gradebook as Canvas's and Moodle's import files, compared with samples from their documentation."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
from nbgrader.api import Gradebook

from autograder.config import COURSE_ID, ensure_tools_on_path
from autograder.export import read_gradebook, read_roster, table, write

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "lms"
MAX = {"00_start_here": {}, "02_convolution": {"correlate2d": 4, "convolve2d": 6}, "03_padding_and_stride": {"pad2d": 15}}
CANVAS_IDS = {"smithjohn": "smithjohn", "jdoe": "jdoe", "ada": "lovelaceada_33333", "stranger": "stranger"}
MOODLE_IDS = {"smithjohn": "john-smith", "jdoe": "jdoe@example.edu", "ada": "S003", "stranger": "stranger"}


def make_gradebook(path: pathlib.Path, ids: dict[str, str]) -> str:
    """A gradebook as ``grade`` leaves it: lesson 02 graded for all, lesson 03 for one, a score changed by hand."""
    url = f"sqlite:///{path}"
    ensure_tools_on_path()
    scores = {"smithjohn": {"02_convolution": (4, 3), "03_padding_and_stride": (15,)},
              "jdoe": {"02_convolution": (4, 6)}, "ada": {"02_convolution": (0, 0)}, "stranger": {"02_convolution": (3, 0)}}
    with Gradebook(url, COURSE_ID) as gb:
        for lesson, cells in MAX.items():
            gb.add_assignment(lesson)
            gb.add_notebook(lesson, lesson)
            for cell, points in cells.items():
                gb.add_grade_cell(cell, lesson, lesson, max_score=points, cell_type="code")
        for who, lessons in scores.items():
            gb.add_student(ids[who])
            for lesson, points in lessons.items():
                gb.add_submission(lesson, ids[who])
                for cell, score in zip(MAX[lesson], points):
                    gb.find_grade(cell, lesson, lesson, ids[who]).auto_score = score
        grade = gb.find_grade("convolve2d", "02_convolution", "02_convolution", ids["smithjohn"])
        grade.manual_score = 3.5  # overruled in formgrader: 3 -> 3.5, so 7.5 in all
        gb.db.commit()
    return url


@pytest.fixture(scope="module")
def canvas_db(tmp_path_factory):
    return make_gradebook(tmp_path_factory.mktemp("canvas") / "gradebook.db", CANVAS_IDS)


@pytest.fixture
def canvas_book(canvas_db):
    return read_gradebook(canvas_db)


def _sample(name: str) -> list[str]:
    return (DATA / name).read_text(encoding="utf-8").splitlines()


def test_gradebook_is_read_with_hand_changed_scores_and_without_pointless_lessons(canvas_book):
    assert canvas_book.lessons == [("02_convolution", 10.0), ("03_padding_and_stride", 15.0)]  # 00 is worth nothing
    assert canvas_book.students == ["jdoe", "lovelaceada_33333", "smithjohn", "stranger"]
    assert canvas_book.score[("smithjohn", "02_convolution")] == 7.5
    assert ("jdoe", "03_padding_and_stride") not in canvas_book.score


def test_canvas_with_the_courses_own_export_as_roster(canvas_book):
    rows, unmatched = table(canvas_book, "canvas", (DATA / "canvas_export.csv").read_text())
    assert write(rows).splitlines() == _sample("canvas_import.csv")
    assert unmatched == ["stranger"]
    header, students = read_roster(write(rows))  # Canvas's reading: the points row is not a student
    assert header[:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert [r["ID"] for r in students] == ["22222", "33333", "12345"]


def test_canvas_without_roster_and_plain_csv(canvas_book):
    assert write(table(canvas_book, "canvas")[0]).splitlines() == _sample("canvas_no_roster.csv")
    assert write(table(canvas_book, "csv")[0]).splitlines() == _sample("plain.csv")
    zeros = write(table(canvas_book, "csv", missing_as_zero=True)[0]).splitlines()
    assert zeros[1] == "jdoe,10,0"


def test_moodle_with_the_courses_own_export_as_roster(tmp_path):
    book = read_gradebook(make_gradebook(tmp_path / "gradebook.db", MOODLE_IDS))
    rows, unmatched = table(book, "moodle", (DATA / "moodle_export.csv").read_text())
    assert write(rows).splitlines() == _sample("moodle_import.csv")
    assert unmatched == ["stranger"]
    rows, _ = table(book, "moodle")
    assert rows[0] == ["Username", "02 Convolution", "03 Padding, stride and dilation"]


def test_one_lesson_and_unknown_lessons(canvas_db):
    assert read_gradebook(canvas_db, ["03_padding_and_stride"]).lessons == [("03_padding_and_stride", 15.0)]
    with pytest.raises(ValueError, match="not in the gradebook: 99_nothing"):
        read_gradebook(canvas_db, ["99_nothing"])


def test_command_line_writes_crlf_csv_from_an_out_folder(tmp_path, canvas_db):
    out = pathlib.Path(canvas_db.removeprefix("sqlite:///")).parent  # grade's --out folder
    target = tmp_path / "canvas.csv"
    result = subprocess.run([sys.executable, "-m", "autograder", "export", str(out), "--format", "canvas",
                             "--roster", str(DATA / "canvas_export.csv"), "--to", str(target)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "not in the roster, so not exported: stranger" in result.stderr
    assert "matched by " in result.stdout, result.stdout  # which roster column the grader's ids were found in
    raw = target.read_bytes()
    assert raw.count(b"\r\n") == 5 and raw.decode().splitlines() == _sample("canvas_import.csv")
    missing = subprocess.run([sys.executable, "-m", "autograder", "export", str(tmp_path), "--format", "csv",
                              "--to", str(target)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "no gradebook" in missing.stderr


def test_a_roster_that_matches_nobody_writes_nothing_and_fails(tmp_path, canvas_db):
    """A header-only file would import into Canvas as nothing, silently: the wrong course's roster, or submission
    folders named by something the LMS does not know, must stop the export with a reason."""
    out = pathlib.Path(canvas_db.removeprefix("sqlite:///")).parent
    header = (DATA / "canvas_export.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    roster = tmp_path / "other_course.csv"
    roster.write_text(header + "\n" + "Nobody Here,999,,nobody,\n", encoding="utf-8")
    target = tmp_path / "canvas.csv"
    result = subprocess.run([sys.executable, "-m", "autograder", "export", str(out), "--format", "canvas",
                             "--roster", str(roster), "--to", str(target)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "matches none of the" in result.stderr, (result.returncode, result.stderr)
    assert not target.exists()
