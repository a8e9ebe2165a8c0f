"""Run a lesson's tests in this process against any implementation of its functions.

nbgrader scores a test cell by whether it raises; so do we, without a kernel, which
makes it cheap to try dozens of wrong and alternative implementations per function.

Convention that makes this possible (and that the out-of-kernel checks rely on):
a graded test cell depends only on the locked setup cells, the graded solution
cells, and its own code; never on demo cells in between.
"""

from __future__ import annotations

import functools
import os
import pathlib
import textwrap

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
os.environ.setdefault("MPLBACKEND", "Agg")


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


@functools.cache
def load(lesson: str, folder: str = "solutions") -> nbformat.NotebookNode:
    return nbformat.read(ROOT / folder / lesson / f"{lesson}.ipynb", as_version=4)


def solution_cells(lesson: str) -> dict[str, str]:
    """grade_id -> source of every solution cell (the learner's functions and answers to questions)."""
    return {_meta(c)["grade_id"]: c.source for c in load(lesson).cells if _meta(c).get("solution")}


def functions(lesson: str) -> list[str]:
    """The graded functions: solution cells that are not answers to questions."""
    from cnn_course.course import is_question

    return [f for f in solution_cells(lesson) if not is_question(f)]


def questions(lesson: str) -> list[str]:
    from cnn_course.course import is_question

    return [f for f in solution_cells(lesson) if is_question(f)]


@functools.cache
def answers(lesson: str) -> dict:
    """The instructor's answer to each question, computed as the notebook computes it (setup and solution cells)."""
    namespace: dict = {"__name__": "__main__"}
    for cell in load(lesson).cells:
        if cell.cell_type == "code" and _meta(cell) and not _meta(cell).get("grade"):
            exec(compile(textwrap.dedent(cell.source), f"<{lesson} {_meta(cell).get('grade_id')}>", "exec"), namespace)
    return {q: namespace[q] for q in questions(lesson)}


def graded_test_cells(lesson: str) -> dict[str, tuple[str, float]]:
    """grade_id -> (source, points) of every graded test cell, hidden tests included."""
    return {_meta(c)["grade_id"]: (c.source, float(_meta(c)["points"]))
            for c in load(lesson).cells if _meta(c).get("grade") and not _meta(c).get("solution")}


def points(lesson: str, function: str | None = None) -> float:
    """The lesson's points (or those of ``function``'s test cells): what a correct notebook scores."""
    return sum(p for gid, (_, p) in graded_test_cells(lesson).items()
               if function is None or function_of_test(lesson, gid) == function)


def run_tests(lesson: str, replace: dict[str, str] | None = None, folder: str = "solutions") -> dict[str, str | None]:
    """Execute setup, solution and test cells in order; return grade_id -> error message (None = passed).

    ``replace`` maps a solution cell's grade_id (the function name) to the source to
    run instead, e.g. a deliberately wrong implementation.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    replace = dict(replace or {})
    namespace: dict = {"__name__": "__main__"}
    results: dict[str, str | None] = {}
    for index, cell in enumerate(load(lesson, folder).cells):
        meta = _meta(cell)
        if cell.cell_type != "code" or not meta:
            continue  # demo cells are skipped: tests must not depend on them
        grade_id = meta.get("grade_id", "")
        source = replace.pop(grade_id, cell.source) if meta.get("solution") else cell.source
        code = compile(textwrap.dedent(source), f"<{lesson} cell {index} {grade_id}>", "exec")
        try:
            exec(code, namespace)
            error = None
        except Exception as exc:  # noqa: BLE001 - a failing cell is a result, not a crash
            error = f"{type(exc).__name__}: {exc}"
        finally:
            plt.close("all")
        if meta.get("grade") and not meta.get("solution"):
            results[grade_id] = error
        elif error and not meta.get("solution"):
            raise RuntimeError(f"{lesson} setup cell {grade_id!r} failed: {error}")
    if replace:
        raise KeyError(f"no solution cells named {sorted(replace)} in {lesson}")
    return results


def failed(results: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in results.items() if v is not None}


def function_of_test(lesson: str, grade_id: str) -> str | None:
    """The function a test cell belongs to: the longest f with id test_f or test_f_<suffix>."""
    names = [f for f in solution_cells(lesson) if grade_id == f"test_{f}" or grade_id.startswith(f"test_{f}_")]
    return max(names, key=len) if names else None


def results_for(lesson: str, function: str, results: dict[str, str | None]) -> dict[str, str | None]:
    """The results of the test cells that belong to ``function`` (test_<function>, test_<function>_hidden...)."""
    return {k: v for k, v in results.items() if function_of_test(lesson, k) == function}
