"""Step 2: collect. Find each student's notebook for each lesson and check it can be graded.

Layout (nbgrader's submitted layout): ``SUBMISSIONS/<student_id>/<lesson>/<lesson>.ipynb``;
a folder whose only notebook has another name ("Copy of ...", "... (1)") is graded too
(:func:`autograder.repair.find_notebook`). Problems found here (no notebook, invalid
JSON, not a notebook, a notebook that is a link) become a row with a plain reason; they never stop the run.

Nothing that crossed from a submission is trusted: a link in it (to the instructor's notebook, a folder,
nowhere) is never followed, in collecting or in copying (:func:`copy_submission`).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import stat

from . import repair

SKIPPED = {".ipynb_checkpoints", "__pycache__"}  # left behind by the student's editor, never graded
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


def _linked(sub: Submission, submissions_dir: pathlib.Path) -> str:
    """Why ``sub`` is refused for being a link or lying in one ('' if not): a link may lead to the hidden tests."""
    for folder in (sub.folder.parent, sub.folder):  # folders first: a path through a linked folder is no link itself
        if folder.is_symlink():
            return (f"{folder.relative_to(submissions_dir)} is a link, not a folder: links are never followed; "
                    "submit the files themselves")
    notebook = sub.folder / f"{sub.lesson}.ipynb"
    if notebook.is_symlink():
        return f"{notebook.name} is a link, not a file: links are never followed; submit the notebook itself"
    return ""


def collect_one(submissions_dir: pathlib.Path, student_id: str, lesson: str) -> Submission:
    sub = Submission(student_id, lesson, submissions_dir / student_id / lesson)
    if set(student_id) - STUDENT_ID_CHARS:
        sub.status, sub.reason = "failed", "the student folder name has characters nbgrader cannot use as an id"
        return sub
    linked = _linked(sub, submissions_dir)
    if linked:
        sub.status, sub.reason = "failed", linked
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


def copy_submission(src: pathlib.Path, dest: pathlib.Path) -> list[str]:
    """Copy a student's folder ``src`` into ``dest`` (new): its regular files and folders, nothing else.

    A link (to a file or a folder, absolute or relative, dangling or not) is neither followed nor copied, and
    neither is a device, fifo or socket: the copy is read with the grader's rights, and the student's code would
    find in it whatever a link led to (the hidden tests). Every open refuses a link (O_NOFOLLOW) and checks what
    it opened, so a link swapped in after the check is refused too. Returns the relative paths left out.
    """
    dropped: list[str] = []
    _copy_folder(os.open(src, _OPEN_FOLDER), dest, "", dropped)
    return dropped


_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK  # a link fails to open (ELOOP); a fifo does not block
_OPEN_FOLDER = _OPEN_FILE | os.O_DIRECTORY


def _copy_folder(fd: int, dest: pathlib.Path, prefix: str, dropped: list[str]) -> None:
    """Copy the folder open at ``fd`` (closed here) into ``dest``; ``prefix``: its path in the submission."""
    try:
        dest.mkdir(parents=True)
        with os.scandir(fd) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if entry.name in SKIPPED:
                continue
            folder = entry.is_dir(follow_symlinks=False)
            child = _open_plain(fd, entry.name, folder) if folder or entry.is_file(follow_symlinks=False) else None
            if child is None:  # a link (to a file, a folder or nothing), a device, a fifo or a socket
                dropped.append(prefix + entry.name)
            elif folder:
                _copy_folder(child, dest / entry.name, f"{prefix}{entry.name}/", dropped)
            else:
                _copy_file(child, dest / entry.name)
    finally:
        os.close(fd)


def _open_plain(parent: int, name: str, folder: bool) -> int | None:
    """``name`` in the folder open at ``parent``, opened if it is (still) a regular file or folder, else None."""
    try:
        fd = os.open(name, _OPEN_FOLDER if folder else _OPEN_FILE, dir_fd=parent)
    except OSError:
        return None
    if (stat.S_ISDIR if folder else stat.S_ISREG)(os.fstat(fd).st_mode):
        return fd
    os.close(fd)
    return None


def _copy_file(fd: int, dest: pathlib.Path) -> None:
    """Copy the file open at ``fd`` (closed here) to ``dest`` (new), with its permissions and times."""
    with open(fd, "rb") as r:
        st = os.fstat(fd)
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, (st.st_mode & 0o777) | 0o600)
        with open(out, "wb") as w:
            shutil.copyfileobj(r, w)
            w.flush()
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))


def dropped_note(dropped: list[str], most: int = 10) -> list[str]:
    """The note for the reason naming what :func:`copy_submission` left out (none when nothing was)."""
    if not dropped:
        return []
    more = f" and {len(dropped) - most} more" if len(dropped) > most else ""
    return [f"dropped links and special files (never followed): {', '.join(dropped[:most])}{more}"]


def collect(submissions_dir: pathlib.Path, lessons: list[str]) -> list[Submission]:
    """One Submission per (student, lesson); those not ``pending`` already carry their verdict."""
    return [collect_one(submissions_dir, sid, lesson) for sid in students(submissions_dir) for lesson in lessons]
