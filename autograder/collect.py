"""Step 2: collect. Find each student's notebook for each lesson and check it can be graded.

Layout (nbgrader's submitted layout): ``SUBMISSIONS/<student_id>/<lesson>/<lesson>.ipynb``.
Problems found here (missing or renamed notebook, invalid JSON, not a notebook)
become a row with a plain reason; they never stop the run.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import nbformat

STUDENT_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.@+")


@dataclasses.dataclass
class Submission:
    student_id: str
    lesson: str
    folder: pathlib.Path
    status: str = "pending"          # pending -> graded | failed | missing
    reason: str = ""
    score: float = 0.0
    max_score: float = 0.0
    feedback: pathlib.Path | None = None

    @property
    def notebook(self) -> pathlib.Path:
        return self.folder / f"{self.lesson}.ipynb"


def students(submissions_dir: pathlib.Path) -> list[str]:
    return sorted(p.name for p in submissions_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def check_notebook(path: pathlib.Path) -> str:
    """'' if ``path`` is a notebook nbgrader can read, else the reason it is not."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return "the notebook file is not UTF-8 text (was it saved by Jupyter?)"
    except OSError as exc:
        return f"the notebook could not be read: {exc.strerror}"
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        return (f"the notebook is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                "was it edited outside Jupyter?")
    if not isinstance(raw, dict) or "cells" not in raw:
        return "the file is JSON but not a Jupyter notebook (no 'cells')"
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several types for broken structure
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"the notebook's structure is invalid ({first_line[:200]})"
    return ""


def collect_one(submissions_dir: pathlib.Path, student_id: str, lesson: str) -> Submission:
    sub = Submission(student_id, lesson, submissions_dir / student_id / lesson)
    if set(student_id) - STUDENT_ID_CHARS:
        sub.status, sub.reason = "failed", "the student folder name has characters nbgrader cannot use as an id"
        return sub
    if not sub.folder.is_dir():
        sub.status, sub.reason = "missing", f"no submission: expected {lesson}/{lesson}.ipynb"
        return sub
    if not sub.notebook.is_file():
        others = sorted(p.name for p in sub.folder.glob("*.ipynb"))
        sub.status = "missing"
        sub.reason = f"notebook missing: expected {lesson}.ipynb"
        if others:
            sub.reason += f", found {', '.join(others)} (renamed? rename it back to {lesson}.ipynb)"
        return sub
    problem = check_notebook(sub.notebook)
    if problem:
        sub.status, sub.reason = "failed", problem
    return sub


def collect(submissions_dir: pathlib.Path, lessons: list[str]) -> list[Submission]:
    """One Submission per (student, lesson); those not ``pending`` already carry their verdict."""
    return [collect_one(submissions_dir, sid, lesson) for sid in students(submissions_dir) for lesson in lessons]
