"""Fail closed through the whole ``grade`` command: a class of lesson 02 where the cheats of
tests/test_fail_closed.py come packaged as real submissions (files beside the notebook, forged
in-kernel checks), beside the reference; and a grading machine that cannot grade the instructor's
own solution, which must grade nobody rather than give students zeros.
"""

import csv
import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
import time

import nbformat
import pytest

from autograder.grade import NOT_GRADED
from tests import messy
from tests.notebook_runner import points
from tests.submissions import put
from tests.test_arms_length import stubs
from tests.test_autograder_adversarial import MONKEYPATCH
from tests.test_fail_closed import BUILTINS_FORGED

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON = "02_convolution"
pytestmark = pytest.mark.slow


def grade(subs: pathlib.Path, out: pathlib.Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out), "--jobs", "2",
                           "--quiet"], cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env}, timeout=1200)


def rows(out: pathlib.Path) -> dict[str, dict]:
    with (out / "grades.csv").open() as f:
        return {row["student_id"]: row for row in csv.DictReader(f)}


def forged_stubs() -> nbformat.NotebookNode:
    """Every function a stub, every check in the kernel replaced so that the kernel's tests pass."""
    replace = stubs(LESSON, "", "", "0")
    replace["correlate2d"] = MONKEYPATCH.split("\ndef conv2d_forward")[0] + "\n" + replace["correlate2d"]
    return messy.student_notebook(LESSON, **replace)


def test_stub_functions_score_nothing_however_they_are_packaged(tmp_path):
    subs, out = tmp_path / "submitted", tmp_path / "out"
    put(subs, "reference", LESSON, messy.student_notebook(LESSON))
    put(subs, "shadow", LESSON, forged_stubs())  # and a module the verification process imports, beside it
    (subs / "shadow" / LESSON / "numpy.py").write_text("raise SystemExit('verification is off')\n")
    (subs / "shadow" / LESSON / "autograder").mkdir()
    (subs / "shadow" / LESSON / "autograder" / "__init__.py").write_text("import os\nos._exit(0)\n")
    put(subs, "builtins", LESSON, messy.student_notebook(LESSON, **{**stubs(LESSON, "", "", "0"), **BUILTINS_FORGED}))
    put(subs, "typo", LESSON, messy.student_notebook(LESSON, convolve2d="def convolve2d(:image, kernel):\n    pass\n"))
    result = grade(subs, out)
    assert result.returncode == 0, result.stderr[-3000:]
    grades = rows(out)
    assert grades["reference"]["status"] == "graded" and float(grades["reference"]["score"]) == points(LESSON), grades
    for student in ("shadow", "builtins"):
        assert grades[student]["status"] == "graded" and float(grades[student]["score"]) == 0, grades[student]
    assert "outside the notebook kernel" in grades["shadow"]["reason"], grades["shadow"]
    # A function that never came to exist is named in the reason, with its line (not only its tests' NameError).
    assert float(grades["typo"]["score"]) == points(LESSON) - points(LESSON, "convolve2d"), grades["typo"]
    assert grades["typo"]["reason"].startswith("convolve2d did not run: SyntaxError at line 1 of its cell"), grades["typo"]


def test_a_grader_that_cannot_grade_the_instructors_solution_grades_nobody(tmp_path):
    """A package the grader's environment has and the sandbox cannot see (here: one on the grader's PYTHONPATH,
    which sandboxed processes do not inherit) used to give every complete notebook 0 points, status graded.
    The canary, the instructor's own solution graded first through the same path, stops that."""
    course = tmp_path / "course"
    shutil.copytree(ROOT / "solutions" / LESSON, course / "solutions" / LESSON)
    notebook = course / "solutions" / LESSON / f"{LESSON}.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    setup = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
    setup.source = "import course_extra  # noqa: F401\n" + setup.source
    nbformat.write(nb, notebook)
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "course_extra.py").write_text("")
    subs, out = tmp_path / "submitted", tmp_path / "out"
    put(subs, "complete", LESSON, messy.student_notebook(LESSON))
    put(subs, "empty", LESSON, nbformat.read(ROOT / "lessons" / LESSON / f"{LESSON}.ipynb", as_version=4))
    result = grade(subs, out, CNN_COURSE_ROOT=str(course), PYTHONPATH=str(extra))
    assert result.returncode == 3, (result.returncode, result.stderr[-3000:])
    assert "not graded" in result.stderr and "course_extra" in result.stderr, result.stderr[-3000:]
    for row in rows(out).values():
        assert row["status"] == "failed" and row["reason"].startswith(NOT_GRADED), row
        assert "course_extra" in row["reason"], row  # what failed in the sandbox, for the instructor to act on
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{out / 'gradebook.db'}", "cnn-course") as gb:  # graded beside the canary: taken back
        for student in ("complete", "empty"):
            with pytest.raises(MissingEntry):
                gb.find_submission(LESSON, student)


def _stuck_or_quick(sub, db_url):
    """A stand-in for grade_one: one submission never finishes (say, a hang in a library we call), the rest do."""
    if sub.student_id == "stuck":
        time.sleep(3600)
    return dataclasses.replace(sub, status="graded", reason=f"graded in {os.getpid()}")


def test_one_submission_delays_the_class_by_at_most_its_budget(monkeypatch):
    """Whatever a submission gets stuck in, its worker is ended from outside once its budget is spent; the
    others are graded (again, in new workers, where they shared the ended one's pool)."""
    from tqdm import tqdm

    from autograder import grade as grading
    from autograder.collect import Submission

    monkeypatch.setattr(grading, "SUBMISSION_TIMEOUT_S", 3)
    monkeypatch.setattr(grading, "OVERRUN_GRACE_S", 1)
    subs = [Submission(name, LESSON, pathlib.Path("/nowhere")) for name in ("a", "b", "stuck", "c", "d")]
    workers = grading._Workers(2, (), task=_stuck_or_quick, initializer=lambda threads: None)
    start = time.monotonic()
    try:
        graded = workers.grade([(s, None) for s in subs], tqdm(disable=True))
    finally:
        workers.close()
    assert time.monotonic() - start < 30
    by_id = {s.student_id: s for s in graded}
    assert by_id["stuck"].status == "failed" and "longer than its budget of 3 s" in by_id["stuck"].reason
    assert all(by_id[s].status == "graded" for s in "abcd"), graded


FLOOD = "import sys\nwhile True:\n    sys.stdout.write('x' * 100000 + '\\n')\n"


def test_a_cell_that_floods_its_output_costs_the_grading_worker_little_memory(tmp_path):
    """A cell printing in a loop until its time limit used to take the grading worker to 2.4 GB (nbclient kept
    every message, ZeroMQ queued a thousand more); now the worker keeps 4 MiB of a cell's output and queues few
    messages, and the flood costs only the function that floods."""
    import resource

    from autograder import collect
    from autograder import grade as grading
    from autograder.isolation import modules_imported_by, stop_zygote

    lesson = "01_fully_connected_limits"
    subs, work = tmp_path / "submitted", tmp_path / "work"
    put(subs, "flood", lesson, messy.student_notebook(lesson, dense_param_count=FLOOD))
    db = f"sqlite:///{tmp_path / 'gradebook.db'}"
    grading.prepare_workspace(ROOT, work, [lesson], db)
    grading._init_worker(work, db, [str(subs)], True,
                         ["ipykernel.kernelapp", *modules_imported_by([work / "source" / lesson / f"{lesson}.ipynb"])])
    try:
        grading.register_students(db, ["flood"])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        graded = grading.grade_one(collect.collect_one(subs, "flood", lesson))
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    finally:
        stop_zygote()
    assert grown_mib < 400, f"the grading worker grew by {grown_mib:.0f} MiB"
    assert graded.status == "graded" and graded.score == points(lesson) - points(lesson, "dense_param_count"), graded
