"""Student-side check: ``python -m autograder check NOTEBOOK``.

Runs the notebook top to bottom in a fresh kernel (as the grader will, but with
the visible tests only: hidden tests are not in the student's copy) and reports
each graded test cell. Exit status 0 when every test cell passed, 1 when any
failed, 2 when the notebook could not be read. Unlike ``nbgrader validate``,
a failure is an exit status a script or CI can use.
"""

from __future__ import annotations

import pathlib
import sys

from .collect import check_notebook
from .config import CELL_TIMEOUT_S


def _exercise(test_id: str, functions: list[str]) -> str:
    names = [f for f in functions if test_id == f"test_{f}" or test_id.startswith(f"test_{f}_")]
    return max(names, key=len) if names else test_id


def check(path: pathlib.Path, timeout: int = CELL_TIMEOUT_S, out=sys.stdout) -> int:
    import nbformat

    from .execute import ResilientExecute

    problem = "no such file" if not path.is_file() else check_notebook(path)
    if problem:
        print(f"{path}: {problem}", file=out)
        return 2
    nb = nbformat.read(path, as_version=4)
    executor = ResilientExecute(timeout=timeout, sandboxed=0, submission_timeout=max(timeout * 20, 600),
                                allow_errors=True, interrupt_on_timeout=True)
    executor.preprocess(nb, {"metadata": {"path": str(path.resolve().parent)}})
    functions = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
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
            if o.get("ename") in ("KernelDied", "CellTimeout", "SubmissionTimeout"):
                print(f"note: {o.get('evalue')}", file=out)
    print(f"{total - failed} of {total} test cells passed" + ("" if not failed else "; fix the ones marked FAIL"), file=out)
    return 1 if failed else 0
