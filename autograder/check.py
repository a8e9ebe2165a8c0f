"""Student-side check: ``python -m autograder check NOTEBOOK``.

Repairs the notebook as the grader will (:mod:`autograder.repair`: duplicated,
split or retyped cells, another editor's file format) and says what it repaired,
then runs it top to bottom in a fresh kernel (as the grader will, but with the
visible tests only: hidden tests are not in the student's copy) and reports each
graded test cell. The kernel's folder holds only the lesson's own files
(:func:`autograder.repair.lesson_files`), never the folder the notebook sits in.
Exit status 0 when every test cell passed, 1 when any failed, 2 when the notebook
could not be read. Unlike ``nbgrader validate``, a failure is an exit status a
script or CI can use.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sys

from . import repair
from .config import CELL_TIMEOUT_S, course_root, lesson_ids


def _exercise(test_id: str, functions: list[str]) -> str:
    names = [f for f in functions if test_id == f"test_{f}" or test_id.startswith(f"test_{f}_")]
    return max(names, key=len) if names else test_id


def _release(path: pathlib.Path, nb) -> tuple[str | None, object]:
    """The lesson this notebook is and its release notebook: by file name, else by its grade ids."""
    import nbformat

    root = course_root()
    releases = {x: root / "lessons" / x / f"{x}.ipynb" for x in lesson_ids(root)}
    releases = {x: p for x, p in releases.items() if p.is_file()}
    lesson = repair.lesson_of(path.name, list(releases))
    if lesson is None:
        ids = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells} - {None}
        overlap = {x: len(ids & {c.metadata.get("nbgrader", {}).get("grade_id")
                                 for c in nbformat.read(p, as_version=4).cells}) for x, p in releases.items()}
        lesson = max(overlap, key=overlap.get, default=None)
        if lesson is not None and overlap[lesson] < 2:
            lesson = None
    return lesson, (nbformat.read(releases[lesson], as_version=4) if lesson else None)


def check(path: pathlib.Path, timeout: int = CELL_TIMEOUT_S, out=sys.stdout) -> int:
    from .execute import FAULTS, ResilientExecute, solution_errors

    try:
        if not path.is_file():
            raise repair.Unreadable("no such file")
        nb, notes = repair.read(path)
    except repair.Unreadable as exc:
        print(f"{path}: {exc}", file=out)
        return 2
    lesson, release = _release(path, nb)
    if release is None:
        print("note: this is not a notebook of the course's lessons/ folder; checked as it is", file=out)
    else:
        notes += repair.repair(nb, release)
    for note in notes:
        print(f"repaired (the grader does the same): {note}", file=out)
    try:
        stage = repair.staged(lesson, path.parent)
    except ValueError as exc:
        print(f"{path}: {exc}", file=out)
        return 2
    from . import isolation

    problem = isolation.strict_problem()
    if problem:  # a learner's own machine (macOS, Windows, no bubblewrap): their code, their rights, as in Jupyter
        os.environ["CNN_GRADER_ACCEPT_WEAK_ISOLATION"] = "1"
        print(f"note: running without the grader's sandbox ({problem.split(':')[0]})", file=out)
    executor = ResilientExecute(timeout=timeout, submission_timeout=max(timeout * 20, 600),
                                allow_errors=True, interrupt_on_timeout=True)
    try:
        executor.preprocess(nb, {"metadata": {"path": str(stage)}})
    finally:
        isolation.stop_zygote()
        shutil.rmtree(stage, ignore_errors=True)
    functions = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    for error in solution_errors(nb):  # said first: every test of that function fails for this reason
        print(f"ERROR {error}", file=out)
    failed = 0
    total = 0
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        code = [line for line in cell.source.splitlines() if line.strip() and not line.strip().startswith("#")]
        if not code:
            print(f"--   {_exercise(meta['grade_id'], functions)} ({meta['grade_id']}): hidden tests, run when your "
                  "work is graded", file=out)
            continue
        total += 1
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        exercise = _exercise(meta["grade_id"], functions)
        if errors:
            failed += 1
            e = errors[-1]
            why = f"{e.get('ename')}: {e.get('evalue')}".strip().splitlines()
            print(f"FAIL {exercise} ({meta['grade_id']}): " + "\n    ".join(why[:6]), file=out)
        else:
            print(f"ok   {exercise} ({meta['grade_id']})", file=out)
    for cell in nb.cells:  # faults outside test cells (a solution cell that killed the kernel or hung)
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or (meta.get("grade") and not meta.get("solution")):
            continue
        for o in cell.get("outputs", []):
            if o.get("ename") in FAULTS:
                print(f"note: {o.get('evalue')}", file=out)
    print(f"{total - failed} of {total} test cells passed" + ("" if not failed else "; fix the ones marked FAIL"), file=out)
    return 1 if failed else 0
