"""Submissions from a learning-management system: a downloaded zip, through nbgrader's ``zip_collect``.

``python -m autograder collect-zip DOWNLOAD.zip --lesson 02_convolution --into SUBMISSIONS``
extracts the archive with nbgrader's ZipCollectApp in a scratch course directory and
copies the result into nbgrader's submitted layout, ready for ``grade``. File names
are matched with a regular expression that has ``student_id`` and ``file_id`` groups;
the default fits the usual LMS pattern ``<student>_<anything>_<lesson>.ipynb``
(Canvas: ``smithj_12345_678_02_convolution.ipynb``; Moodle with the student id first).
"""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
import tempfile


def default_regexp(lesson: str) -> str:
    return rf"^(?:.*/)?(?P<student_id>[A-Za-z0-9.@+-]+)_(?:.*_)?(?P<file_id>{re.escape(lesson)}\.ipynb)$"


def collect_zip(archive: pathlib.Path, lesson: str, into: pathlib.Path, regexp: str | None = None) -> list[str]:
    """Extract ``archive`` into ``into/<student_id>/<lesson>/``; return the student ids found."""
    from .config import ensure_tools_on_path

    ensure_tools_on_path()
    with tempfile.TemporaryDirectory(prefix="cnn-zip-") as scratch:
        course = pathlib.Path(scratch)
        target = course / "downloaded" / lesson / "archive"
        target.mkdir(parents=True)
        shutil.copy(archive, target / archive.name)
        (course / "nbgrader_config.py").write_text(
            "c = get_config()\n"
            f"c.CourseDirectory.root = {str(course)!r}\n"
            "c.CourseDirectory.course_id = 'cnn-course'\n"
            f"c.FileNameCollectorPlugin.named_regexp = {(regexp or default_regexp(lesson))!r}\n")
        result = subprocess.run([sys.executable, "-m", "nbgrader", "zip_collect", lesson, "--force"], cwd=course,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"nbgrader zip_collect failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        submitted = course / "submitted"
        students = sorted(p.name for p in submitted.iterdir()) if submitted.is_dir() else []
        for student in students:
            dest = into / student / lesson
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(submitted / student / lesson, dest)
    return students
