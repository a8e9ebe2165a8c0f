"""A class of honest-but-messy notebooks: what students' tools and habits do to a lesson notebook.

Each kind takes a filled-in student notebook and returns ``(file name, file bytes)`` as
the student would hand it in; ``NOTES[kind]`` is what the grader's reason must say
about it (``None``: nothing about its form). Kinds come from the issue tracker of
nbgrader (duplicated grade ids, split / retyped / reordered cells) and from the
editors students use (Colab, VS Code, JupyterLab 3/4, Notebook 7, Windows editors).
"""

from __future__ import annotations

import copy
import json
import pathlib
import secrets

import nbformat

from cnn_course.course import is_question
from tests.notebook_runner import answers, solution_cells

ROOT = pathlib.Path(__file__).resolve().parent.parent


def student_notebook(lesson: str, **replace: str) -> nbformat.NotebookNode:
    """The lesson's release notebook with every solution filled in (the reference's, unless replaced); each
    question answered as a student does, with the value itself (the one the instructor's notebook computes)."""
    solutions = {**solution_cells(lesson), **{q: f"{q} = {value!r}\n" for q, value in answers(lesson).items()}}
    nb = nbformat.read(ROOT / "lessons" / lesson / f"{lesson}.ipynb", as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in solutions:
            cell.source = replace.get(gid, solutions[gid])
    return nb


def gid(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _function_cells(nb) -> list[int]:
    """Indices of the solution cells that hold a graded function (not an answer to a question)."""
    return [i for i, c in enumerate(nb.cells)
            if c.metadata.get("nbgrader", {}).get("solution") and not is_question(gid(c) or "")]


def first_exercise(nb) -> tuple[int, int]:
    """Indices of the first function's solution cell and of the first visible test cell after it."""
    s = _function_cells(nb)[0]
    t = next(i for i, c in enumerate(nb.cells) if i > s and c.metadata.get("nbgrader", {}).get("grade"))
    return s, t


def _copy(cell):
    new = copy.deepcopy(cell)
    new.id = secrets.token_hex(4)
    return new


def text(nb) -> str:
    """The notebook's JSON as Jupyter writes it, without nbformat's validation (which would repair it)."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


# -- the kinds: nb -> (file name, bytes) ----------------------------------------------------------


def clean(nb, lesson):
    return f"{lesson}.ipynb", nb


def copied_test(nb, lesson):  # copy-pasted a visible test cell to experiment with it
    _, t = first_exercise(nb)
    experiment = _copy(nb.cells[t])
    experiment.source += "\nprint('trying it out')"
    nb.cells.insert(t + 1, experiment)
    return clean(nb, lesson)


def duplicated_solution(nb, lesson):  # duplicated a solution cell and fixed the later copy
    s, _ = first_exercise(nb)
    first_try = _copy(nb.cells[s])
    first_try.source = nb.cells[s].source.replace("### BEGIN SOLUTION", "raise NotImplementedError\n    ### BEGIN SOLUTION")
    nb.cells.insert(s, first_try)
    return clean(nb, lesson)


def colab_copy(nb, lesson):
    return f"Copy of {lesson}.ipynb", nb


def browser_download(nb, lesson):
    return f"{lesson} (1).ipynb", nb


def byte_order_mark(nb, lesson):
    return f"{lesson}.ipynb", b"\xef\xbb\xbf" + text(nb).encode()


def windows_line_endings(nb, lesson):  # the file and every cell's lines, as a Windows editor saves them
    for cell in nb.cells:
        cell.source = cell.source.replace("\n", "\r\n")
    return f"{lesson}.ipynb", text(nb).replace("\n", "\r\n").encode()


def trailing_spaces(nb, lesson):  # an editor that trims or adds trailing whitespace, test cells included
    for cell in nb.cells:
        cell.source = "\n".join(line + "  " for line in cell.source.split("\n")) + "\n\n"
    return clean(nb, lesson)


def colab(nb, lesson):  # nbformat 4.0 without cell ids, Colab's metadata, outputs
    nb.nbformat_minor = 0
    nb.metadata = {"colab": {"provenance": [], "name": f"{lesson}.ipynb"},
                   "kernelspec": {"name": "python3", "display_name": "Python 3"},
                   "language_info": {"name": "python"}, "accelerator": "GPU"}
    for cell in nb.cells:
        cell.pop("id", None)
        cell.metadata["id"] = secrets.token_hex(6)
        if cell.cell_type == "code":
            cell.metadata["colab"] = {"base_uri": "https://localhost:8080/"}
            cell.metadata["outputId"] = secrets.token_hex(8)
            cell.outputs = [nbformat.v4.new_output("stream", text="ok\n")]
            cell.execution_count = 1
    return clean(nb, lesson)


def vscode(nb, lesson):
    nb.metadata["kernelspec"] = {"name": ".venv", "display_name": ".venv", "language": "python"}
    nb.metadata["vscode"] = {"interpreter": {"hash": secrets.token_hex(32)}}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.4", "mimetype": "text/x-python"}
    return clean(nb, lesson)


def custom_kernel(nb, lesson):
    nb.metadata["kernelspec"] = {"name": "cnn-course-env", "display_name": "Python (cnn)", "language": "python"}
    return clean(nb, lesson)


def jupyterlab_metadata(nb, lesson):  # JupyterLab 3/4 and Notebook 7 cell and notebook metadata, widget state
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                          "version_minor": 0}}
    nb.metadata["toc-autonumbering"] = True
    for cell in nb.cells:
        cell.metadata["tags"] = ["exercise"]
        cell.metadata["jupyter"] = {"source_hidden": False, "outputs_hidden": False}
        if cell.cell_type == "code":
            cell.metadata["scrolled"] = True
            cell.metadata["trusted"] = True
    return clean(nb, lesson)


def older_nbformat(nb, lesson):  # nbformat 4.4 (no cell ids), as Notebook 6 and older tools write
    nb.nbformat_minor = 4
    for cell in nb.cells:
        cell.pop("id", None)
    return clean(nb, lesson)


def shell_and_magics(nb, lesson):  # !ls, %pip, input() and %time cells added by the student
    s, _ = first_exercise(nb)
    for source in ("!ls", "%pip --version", "answer = input('continue? ')", "%time x = sum(range(10))"):
        nb.cells.insert(s, nbformat.v4.new_code_cell(source))
    return clean(nb, lesson)


def added_cells(nb, lesson):  # notes and scratch cells anywhere
    s, t = first_exercise(nb)
    nb.cells.insert(t + 1, nbformat.v4.new_code_cell("scratch = 1 + 1\nprint(scratch)"))
    nb.cells.insert(s, nbformat.v4.new_markdown_cell("My notes: remember the kernel flips."))
    nb.cells.insert(0, nbformat.v4.new_code_cell("import math"))
    nb.cells.append(nbformat.v4.new_code_cell("print('done')"))
    return clean(nb, lesson)


def split_solution(nb, lesson):  # JupyterLab's "split cell" in the middle of the function: both halves keep the mark
    s, _ = first_exercise(nb)
    lines = nb.cells[s].source.split("\n")
    cut = next(i for i, line in enumerate(lines) if "### BEGIN SOLUTION" in line)
    second = _copy(nb.cells[s])
    nb.cells[s].source, second.source = "\n".join(lines[:cut]), "\n".join(lines[cut:])
    nb.cells.insert(s + 1, second)
    return clean(nb, lesson)


def split_solution_unmarked(nb, lesson):  # the same split, the second half without nbgrader's mark
    name, nb = split_solution(nb, lesson)
    s, _ = first_exercise(nb)
    nb.cells[s + 1].metadata = {}
    return name, nb


def solution_below_tests(nb, lesson):  # dragged the solution cell below its tests
    s, t = first_exercise(nb)
    cell = nb.cells.pop(s)
    nb.cells.insert(t + 1, cell)  # t shifted down by one: below the visible and the hidden test
    return clean(nb, lesson)


def exercises_swapped(nb, lesson):  # dragged the second exercise (solution and tests) above the first
    solutions = _function_cells(nb)
    if len(solutions) < 2:
        return clean(nb, lesson)
    end = solutions[2] if len(solutions) > 2 else len(nb.cells)
    second = nb.cells[solutions[1]:end]
    del nb.cells[solutions[1]:end]
    nb.cells[solutions[0]:solutions[0]] = second
    return clean(nb, lesson)


def solution_above_setup(nb, lesson):  # dragged the first solution cell to the top of the notebook
    s, _ = first_exercise(nb)
    nb.cells.insert(0, nb.cells.pop(s))
    return clean(nb, lesson)


def solution_as_markdown(nb, lesson):  # pressed M in command mode
    s, _ = first_exercise(nb)
    nb.cells[s].cell_type = "markdown"
    nb.cells[s].pop("outputs", None)
    nb.cells[s].pop("execution_count", None)
    return clean(nb, lesson)


def solution_as_raw(nb, lesson):  # pressed R in command mode
    name, nb = solution_as_markdown(nb, lesson)
    nb.cells[first_exercise(nb)[0]].cell_type = "raw"
    return name, nb


def markdown_test_cell(nb, lesson):  # pressed M on a test cell
    _, t = first_exercise(nb)
    nb.cells[t].cell_type = "markdown"
    nb.cells[t].pop("outputs", None)
    nb.cells[t].pop("execution_count", None)
    return clean(nb, lesson)


def bare_cells(nb, lesson):  # a tool that writes code cells without outputs or execution counts
    for cell in nb.cells:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)
    return clean(nb, lesson)


def stripped_marks(nb, lesson):  # an editor that drops cell metadata (older VS Code, some converters)
    for cell in nb.cells:
        cell.metadata = {}
    return clean(nb, lesson)


def retyped_solution(nb, lesson):  # deleted the solution cell and wrote the function in a new cell
    s, _ = first_exercise(nb)
    nb.cells[s] = nbformat.v4.new_code_cell(nb.cells[s].source)
    return clean(nb, lesson)


def reordered_demo(nb, lesson):  # moved the first solution cell up, right below the setup, and a markdown cell down
    s, _ = first_exercise(nb)
    setup = max(i for i, c in enumerate(nb.cells[:s]) if c.metadata.get("nbgrader", {}).get("locked"))
    nb.cells.insert(setup + 1, nb.cells.pop(s))
    markdown = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and i > 5)
    nb.cells.append(nb.cells.pop(markdown))
    return clean(nb, lesson)


KINDS = {f.__name__: f for f in (
    clean, copied_test, duplicated_solution, colab_copy, browser_download, byte_order_mark,
    windows_line_endings, trailing_spaces, colab, vscode, custom_kernel, jupyterlab_metadata, older_nbformat,
    shell_and_magics, added_cells, split_solution, split_solution_unmarked, solution_below_tests,
    exercises_swapped, solution_above_setup, solution_as_markdown, solution_as_raw, markdown_test_cell,
    bare_cells, stripped_marks, retyped_solution, reordered_demo)}

# Kinds after which the graded cells keep the student's order (all tests still after what they use).
# Kinds whose repair keeps every graded cell but not the release's exact order (a solution moved back below
# the setup lands right after it, ahead of questions the release puts first): compared as sets.
REORDERED = {"exercises_swapped", "solution_above_setup"}

# What the reason must say (a substring; {s} is the first solution's grade id, {t} its first test's,
# {lesson} the lesson); None: nothing about the notebook's form.
NOTES = {
    "clean": None,
    "copied_test": "your duplicated test cell {t} was removed",
    "duplicated_solution": "solution cell {s} appeared 2 times",
    "colab_copy": "graded 'Copy of {lesson}.ipynb'",
    "browser_download": "graded '{lesson} (1).ipynb'",
    "byte_order_mark": "byte-order mark",
    "windows_line_endings": "Windows line endings",
    "trailing_spaces": None,
    "colab": None,
    "vscode": None,
    "custom_kernel": None,
    "jupyterlab_metadata": None,
    "older_nbformat": None,
    "shell_and_magics": None,
    "added_cells": None,
    "split_solution": "solution cell {s} was split into 2 cells",
    "split_solution_unmarked": "solution cell {s} was split into 2 cells",
    "solution_below_tests": "solution cell {s} was below test cells that use it",
    "exercises_swapped": "solution cell {s} was below test cells that use it",
    "solution_above_setup": "solution cell {s} was above the setup cells it needs",
    "solution_as_markdown": "turned into markdown",
    "solution_as_raw": "turned into raw",
    "markdown_test_cell": "test cells restored as code: {t} (turned into markdown)",
    "bare_cells": None,
    "stripped_marks": "cells that had lost their grading marks, recognised by their code: ",
    "retyped_solution": "solution cell {s} had lost its grading mark",
    "reordered_demo": None,
}


def make(kind: str, lesson: str, **replace: str) -> tuple[str, bytes]:
    """File name and bytes of ``lesson`` handed in as ``kind`` (solutions from ``replace`` or the reference)."""
    name, result = KINDS[kind](student_notebook(lesson, **replace), lesson)
    return name, result if isinstance(result, bytes) else text(result).encode()


def looping(lesson: str) -> dict[str, str]:
    """The first function of ``lesson`` with an infinite loop before its work (for ``replace``)."""
    nb = student_notebook(lesson)
    name = gid(nb.cells[first_exercise(nb)[0]])
    return {name: solution_cells(lesson)[name].replace("### BEGIN SOLUTION", "### BEGIN SOLUTION\n    while True:\n"
                                                       "        pass", 1)}


def expected_note(kind: str, lesson: str) -> str | None:
    nb = student_notebook(lesson)
    s, t = first_exercise(nb)
    template = NOTES[kind]
    return None if template is None else template.format(s=gid(nb.cells[s]), t=gid(nb.cells[t]), lesson=lesson)


def put(submissions: pathlib.Path, student: str, lesson: str, kind: str, **replace: str) -> pathlib.Path:
    """Write ``SUBMISSIONS/<student>/<lesson>/<file>`` as ``kind``; return the path."""
    name, data = make(kind, lesson, **replace)
    folder = submissions / student / lesson
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name
