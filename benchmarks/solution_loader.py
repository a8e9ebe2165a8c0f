"""Load a lesson's reference implementations from its solution notebook, without copying code.

    from solution_loader import load_solutions
    ns = load_solutions("03_padding_and_stride")
    ns["conv2d_fast"](x, w, padding=1)

Executes, in order, the notebook's setup cell, its other locked helper cells (such as
``as_pair``) and its solution cells: exactly the code a graded test sees, and nothing
from the demo or test cells.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_solutions(lesson: str) -> dict:
    """Namespace holding the lesson's setup imports, helpers and reference solutions."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    notebook = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    namespace: dict = {"__name__": f"solutions_{lesson}"}
    for index, cell in enumerate(notebook.cells):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta or meta.get("grade"):
            continue  # demo cells and test cells are not needed
        with contextlib.redirect_stdout(io.StringIO()):  # helper cells may print examples
            exec(compile(cell.source, f"<{lesson} cell {index} {meta.get('grade_id')}>", "exec"), namespace)
    return namespace
