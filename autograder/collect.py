"""Step 2: collect. Find each student's notebook for each lesson and check it can be graded.

Layout (nbgrader's submitted layout): ``SUBMISSIONS/<student_id>/<lesson>/<lesson>.ipynb``;
a folder whose only notebook has another name ("Copy of ...", "... (1)") is graded too
(:func:`autograder.repair.find_notebook`). Problems found here (no notebook, invalid
JSON, not a notebook) become a row with a plain reason; they never stop the run.
"""

from __future__ import annotations

import dataclasses
import pathlib

from . import repair

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
    file: str = ""                   # the notebook's name in folder ("": <lesson>.ipynb)

    @property
    def notebook(self) -> pathlib.Path:
        return self.folder / (self.file or f"{self.lesson}.ipynb")


def students(submissions_dir: pathlib.Path) -> list[str]:
    return sorted(p.name for p in submissions_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def check_notebook(path: pathlib.Path) -> str:
    """'' if ``path`` is a notebook the repair step can read, else the reason it is not."""
    try:
        repair.read(path)
    except repair.Unreadable as exc:
        return str(exc)
    return ""


def collect_one(submissions_dir: pathlib.Path, student_id: str, lesson: str) -> Submission:
    sub = Submission(student_id, lesson, submissions_dir / student_id / lesson)
    if set(student_id) - STUDENT_ID_CHARS:
        sub.status, sub.reason = "failed", "the student folder name has characters nbgrader cannot use as an id"
        return sub
    if not sub.folder.is_dir():
        sub.status, sub.reason = "missing", f"no submission: expected {lesson}/{lesson}.ipynb"
        return sub
    notebook, why = repair.find_notebook(sub.folder, lesson)
    if notebook is None:
        sub.status, sub.reason = "missing", why
        return sub
    sub.file = notebook.name
    problem = check_notebook(sub.notebook)
    if problem:
        sub.status, sub.reason = "failed", (f"in '{notebook.name}': " if why else "") + problem
    return sub


def collect(submissions_dir: pathlib.Path, lessons: list[str]) -> list[Submission]:
    """One Submission per (student, lesson); those not ``pending`` already carry their verdict."""
    return [collect_one(submissions_dir, sid, lesson) for sid in students(submissions_dir) for lesson in lessons]
