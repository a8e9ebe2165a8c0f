"""nbgrader's formgrader starts with the course configuration and lists the lessons.

Instructors grade by hand in the formgrader (see docs/instructor_guide.md). It reads the
repository's nbgrader_config.py; we run it on a copy of the course files (so its
gradebook.db is created in a temporary folder, not in the repository), query its API
and page, and stop it.
"""

from __future__ import annotations

import csv
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

from autograder.config import lesson_ids
from tests.jupyter_server import running_server

ROOT = pathlib.Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture
def course_copy(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy2(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    for folder in ("solutions", "lessons"):
        shutil.copytree(ROOT / folder, course / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return course


def test_formgrader_lists_every_lesson(course_copy):
    extension = "--ServerApp.jpserver_extensions=nbgrader.server_extensions.formgrader=True"
    with running_server(["server"], cwd=course_copy, extra_args=[extension]) as server:
        assignments = server.get("/formgrader/api/assignments")
        names = {a["name"] for a in assignments}
        assert names == set(lesson_ids(ROOT)), (names, server.log_tail())
        for a in assignments:  # the course's folders, from nbgrader_config.py
            assert a["source_path"] == f"solutions/{a['name']}", a
            assert a["release_path"] in (f"lessons/{a['name']}", None), a  # None: not released yet
        assert {a["name"]: a["release_path"] for a in assignments}["02_convolution"] == "lessons/02_convolution"
        status, page = server.request("/formgrader")
        assert status == 200 and "Manage Assignments" in page, page[:1000]
        assert server.get("/formgrader/api/students") == []  # a fresh gradebook
    assert (course_copy / "gradebook.db").is_file(), "formgrader should use the course's gradebook (root/gradebook.db)"


MOODLE_REGEXP = r".*_(?P<student_id>\d+)_assignsubmission_file_(?P<file_id>.+)"


def _nbgrader(course: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"nbgrader {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def test_guide_manual_review_path(course_copy, tmp_path):
    """docs/instructor_guide.md, "Review by hand": an LMS zip -> zip_collect -> autograde -> formgrader -> export."""
    lesson = "02_convolution"
    archive = course_copy / "downloaded" / lesson / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "lms_download.zip", "w") as zf:  # how Moodle names an assignment download
        zf.write(ROOT / "solutions" / lesson / f"{lesson}.ipynb", f"Ada Lovelace_1001_assignsubmission_file_{lesson}.ipynb")
    _nbgrader(course_copy, "zip_collect", lesson, f"--FileNameCollectorPlugin.named_regexp={MOODLE_REGEXP}")
    assert (course_copy / "submitted" / "1001" / lesson / f"{lesson}.ipynb").is_file()

    before = (course_copy / "lessons" / lesson / f"{lesson}.ipynb").read_bytes()
    _nbgrader(course_copy, "generate_assignment", lesson, "--force")
    assert (course_copy / "lessons" / lesson / f"{lesson}.ipynb").read_bytes() == before, \
        "nbgrader's generate_assignment should reproduce the released lesson exactly"
    _nbgrader(course_copy, "autograde", lesson)

    extension = "--ServerApp.jpserver_extensions=nbgrader.server_extensions.formgrader=True"
    with running_server(["server"], cwd=course_copy, extra_args=[extension]) as server:
        submissions = server.get(f"/formgrader/api/submissions/{lesson}")
        assert [(s["student"], s["autograded"]) for s in submissions] == [("1001", True)], submissions
        assert submissions[0]["score"] == submissions[0]["max_score"] > 0, submissions  # the reference solution
        notebooks = server.get(f"/formgrader/api/submitted_notebooks/{lesson}/{lesson}")
        assert [n["student"] for n in notebooks] == ["1001"], notebooks
        status, page = server.request(f"/formgrader/submissions/{notebooks[0]['id']}")
        assert status == 200 and "correlate2d" in page  # the manual-grading page of that notebook

    _nbgrader(course_copy, "generate_feedback", lesson)
    assert (course_copy / "feedback" / "1001" / lesson / f"{lesson}.html").is_file()
    _nbgrader(course_copy, "export", "--to", str(tmp_path / "grades.csv"))
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    assert [(r["assignment"], r["student_id"]) for r in rows] == [(lesson, "1001")]
    assert float(rows[0]["score"]) == float(rows[0]["max_score"]) > 0
