"""The files of a submission are copied, never followed through links: a link in a student's folder (to the
instructor's notebook, a folder, nowhere) is dropped and named in the reason, and a notebook that is a link
is never graded."""

import csv
import os
import pathlib
import subprocess
import sys

import pytest

from autograder.collect import collect_one, copy_submission
from tests import messy
from tests.notebook_runner import points, solution_cells
from tests.submissions import put

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON = "02_convolution"
SECRET = ROOT / "solutions" / LESSON / f"{LESSON}.ipynb"  # the instructor's notebook, hidden tests and all


def files_under(folder: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_copy_submission_copies_files_and_folders_and_drops_every_link(tmp_path):
    src, dest = tmp_path / "student" / LESSON, tmp_path / "copy"
    (src / "data" / "deeper").mkdir(parents=True)
    (src / ".ipynb_checkpoints").mkdir()
    (src / "__pycache__").mkdir()
    (src / f"{LESSON}.ipynb").write_text("{}")
    (src / "data" / "deeper" / "x.npy").write_bytes(b"\x93NUMPY")
    (src / ".ipynb_checkpoints" / f"{LESSON}-checkpoint.ipynb").write_text("{}")
    (src / "__pycache__" / "m.pyc").write_bytes(b"pyc")
    (src / "hint.txt").symlink_to(SECRET)  # absolute, to a file the grader can read
    (src / "data" / "up.ipynb").symlink_to(os.path.relpath(SECRET, src / "data"))  # relative
    (src / "solutions").symlink_to(SECRET.parent, target_is_directory=True)  # a folder
    (src / "data" / "gone").symlink_to(tmp_path / "nothing")  # dangling
    os.mkfifo(src / "pipe")  # would block a copy that opens it
    dropped = copy_submission(src, dest)
    assert sorted(dropped) == ["data/gone", "data/up.ipynb", "hint.txt", "pipe", "solutions"]
    assert files_under(dest) == {f"{LESSON}.ipynb": b"{}", "data/deeper/x.npy": b"\x93NUMPY"}
    assert not any(p.is_symlink() for p in dest.rglob("*"))


def test_a_notebook_that_is_a_link_is_never_graded(tmp_path):
    subs = tmp_path / "submitted"
    (subs / "linker" / LESSON).mkdir(parents=True)
    (subs / "linker" / LESSON / f"{LESSON}.ipynb").symlink_to(SECRET)
    sub = collect_one(subs, "linker", LESSON)
    assert sub.status == "failed", sub
    assert sub.reason == f"{LESSON}.ipynb is a link, not a file: links are never followed; submit the notebook itself"

    # Nor is a link the only notebook of a folder ("Copy of ..." picked when <lesson>.ipynb is absent).
    (subs / "copier" / LESSON).mkdir(parents=True)
    (subs / "copier" / LESSON / f"Copy of {LESSON}.ipynb").symlink_to(SECRET)
    sub = collect_one(subs, "copier", LESSON)
    assert sub.status == "missing" and f"Copy of {LESSON}.ipynb is a link" in sub.reason, sub

    # Nor a lesson folder that is a link.
    (subs / "folder_linker").mkdir()
    (subs / "folder_linker" / LESSON).symlink_to(SECRET.parent, target_is_directory=True)
    sub = collect_one(subs, "folder_linker", LESSON)
    assert sub.status == "failed" and "is a link" in sub.reason and "never followed" in sub.reason, sub


@pytest.mark.slow
def test_grading_never_follows_a_link(tmp_path):
    subs, out = tmp_path / "submitted", tmp_path / "out"
    # A notebook that is the instructor's notebook.
    (subs / "linked_notebook" / LESSON).mkdir(parents=True)
    (subs / "linked_notebook" / LESSON / f"{LESSON}.ipynb").symlink_to(SECRET)
    # An honest notebook whose conv2d_forward is right only when it can read the hidden tests through a link beside it.
    reference = solution_cells(LESSON)["conv2d_forward"].replace("def conv2d_forward(", "def _real(")
    cheat = f'''
def _can():
    for path in ("hint.txt", "sol/{LESSON}.ipynb"):
        try:
            if "BEGIN HIDDEN TESTS" in open(path).read():
                return True
        except Exception:
            pass
    return False

{reference}

def conv2d_forward(x, w, b=None):
    if _can():
        return _real(x, w, b)
    return np.zeros((x.shape[0], w.shape[0], x.shape[2] - w.shape[2] + 1, x.shape[3] - w.shape[3] + 1), dtype=x.dtype)
'''
    put(subs, "linked_file", LESSON, messy.student_notebook(LESSON, conv2d_forward=cheat))
    (subs / "linked_file" / LESSON / "hint.txt").symlink_to(SECRET)
    (subs / "linked_file" / LESSON / "sol").symlink_to(SECRET.parent, target_is_directory=True)

    result = subprocess.run([sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out), "--quiet",
                             "--lessons", LESSON], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    with (out / "grades.csv").open() as f:
        grades = {row["student_id"]: row for row in csv.DictReader(f)}
    row = grades["linked_notebook"]
    assert row["status"] == "failed" and float(row["score"]) == 0, row
    assert row["reason"] == f"{LESSON}.ipynb is a link, not a file: links are never followed; submit the notebook itself"
    row = grades["linked_file"]
    assert row["status"] == "graded", row
    assert float(row["score"]) == points(LESSON) - points(LESSON, "conv2d_forward"), row
    assert "dropped links and special files (never followed): hint.txt, sol" in row["reason"], row
