"""Building a class of submissions in nbgrader's submitted layout, for the grading tests."""

import pathlib

import nbformat


def put(submissions: pathlib.Path, student: str, lesson: str, nb=None, name: str | None = None, text: str | None = None):
    """Write ``SUBMISSIONS/<student>/<lesson>/<name or lesson.ipynb>``: a notebook, or raw ``text``."""
    folder = submissions / student / lesson
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{lesson}.ipynb")
    if text is not None:
        path.write_text(text)
    else:
        nbformat.write(nb, path)
