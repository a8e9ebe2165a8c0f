"""Keep lesson notebooks clean: no outputs, no execution counts, one kernel spec, the course header.

    python tools/normalize_notebooks.py solutions/*/*.ipynb          # fix in place
    python tools/normalize_notebooks.py --check solutions/*/*.ipynb  # CI: exit 1 if any would change

Authors may draft a lesson as a jupytext "percent" script and convert it with
`jupytext --to ipynb draft.py -o solutions/<id>/<id>.ipynb`; this tool then drops
jupytext's metadata and sets the course's standard notebook metadata.

A notebook named like a lesson (``NN_name.ipynb``) also gets the course header, two
locked, ungraded nbgrader cells that this tool owns and rewrites in place on every run:

- ``colab_badge`` (first cell): "Open in Colab" and Binder badges for the lesson;
- ``colab_setup`` (just before the first code cell): on Google Colab only, installs the
  helper package from the repository and puts the lesson's files and ``data/`` beside the
  notebook; GPU lessons also ask for a GPU runtime. Elsewhere it does nothing.

The links come from ``cnn_course/links.py`` (the one place that names the repository).
Do not edit the header cells by hand: run this tool again.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

import nbformat

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from cnn_course import course, links  # noqa: E402

NOTEBOOK_METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}
LESSON_PATTERN = re.compile(r"^\d\d_[a-z0-9_]+$")
HEADER_IDS = ("colab_badge", "colab_setup")
COLAB_CLONE = "/content/cnn-course"


def _nbgrader(grade_id: str) -> dict:
    return {"grade": False, "grade_id": grade_id, "locked": True, "schema_version": 3, "solution": False}


def badge_source(lesson: str) -> str:
    text = (f"{links.colab_badge(lesson)} {links.binder_badge(lesson)}\n\n"
            "On **Colab**, run the *Colab setup* cell below first; on **Binder** or your own JupyterLab "
            "you can skip it (see the README).")
    if lesson in course.gpu_lessons():
        text += " This lesson trains on a GPU: on Colab, choose *Runtime > Change runtime type > GPU*."
    return text


def colab_setup_source(lesson: str) -> str:
    lines = [
        "# Colab setup: on Google Colab, run this cell first (quiet, and safe to run again).",
        f"# It installs the course's helper package from {links.github_url()} (branch {links.BRANCH})",
        "# and puts this lesson's files and data/ beside the notebook. Anywhere else it does nothing.",
        "import sys",
        "",
        'if "google.colab" in sys.modules:',
        "    import importlib.util, os, shutil, subprocess",
        "",
        f'    _repo = "{COLAB_CLONE}"',
        "    if not os.path.isdir(os.path.join(_repo, \"lessons\")):",
        f'        subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", "{links.BRANCH}",',
        f'                        "{links.clone_url()}", _repo], check=True)',
        '    if importlib.util.find_spec("cnn_course") is None:',
        "        # --no-deps: Colab's own numpy, torch and ipywidgets stay as they are",
        '        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", _repo], check=True)',
        "        importlib.invalidate_caches()",
        f'    _lesson = os.path.join(_repo, "lessons", "{lesson}")',
        "    for _name in sorted(os.listdir(_lesson)):",
        '        if not _name.endswith(".ipynb") and not os.path.exists(_name):',
        "            _copy = shutil.copytree if os.path.isdir(os.path.join(_lesson, _name)) else shutil.copy2",
        "            _copy(os.path.join(_lesson, _name), _name)",
        '    if not os.path.exists("data"):',
        '        os.symlink(os.path.join(_repo, "data"), "data")',
        '    print("Colab setup done: cnn_course installed; lesson files and data/ are beside this notebook.")',
    ]
    if lesson in course.gpu_lessons():
        lines += [
            "    import torch",
            "",
            "    if torch.cuda.is_available():",
            '        print("GPU:", torch.cuda.get_device_name(0))',
            "    else:",
            '        print("This lesson trains on a GPU, and this runtime has none. Attach one:\\n"',
            '              "  Runtime > Change runtime type > Hardware accelerator: GPU (e.g. T4) > Save,\\n"',
            '              "then run the notebook again from the top, starting with this cell.")',
        ]
    return "\n".join(lines)


def _cell_id(cell) -> str:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")


def with_header(nb: nbformat.NotebookNode, lesson: str) -> nbformat.NotebookNode:
    """Put the current header cells in their places, replacing any old ones (idempotent)."""
    cells = [c for c in nb.cells if _cell_id(c) not in HEADER_IDS]
    badge = nbformat.v4.new_markdown_cell(badge_source(lesson), id="colab-badge",
                                          metadata={"nbgrader": _nbgrader("colab_badge")})
    setup = nbformat.v4.new_code_cell(colab_setup_source(lesson), id="colab-setup",
                                      metadata={"nbgrader": _nbgrader("colab_setup")})
    first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
    cells.insert(first_code, setup)
    cells.insert(0, badge)
    nb.cells = cells
    return nb


def normalized(nb: nbformat.NotebookNode, lesson: str | None = None) -> nbformat.NotebookNode:
    nb.metadata = nbformat.from_dict(NOTEBOOK_METADATA)
    if lesson is not None:
        with_header(nb, lesson)
    for cell in nb.cells:
        cell.metadata = nbformat.from_dict({k: v for k, v in cell.metadata.items() if k == "nbgrader"})
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.pop("attachments", None) if not cell.get("attachments") else None
        cell.source = cell.source.rstrip("\n")
    nbformat.validator.normalize(nb)
    return nb


def dumps(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def lesson_of(path: pathlib.Path) -> str | None:
    """The lesson id of a notebook named like a lesson, else None (no header)."""
    return path.stem if LESSON_PATTERN.match(path.stem) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=pathlib.Path)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is not clean")
    args = parser.parse_args(argv)
    dirty = []
    for path in args.notebooks:
        text = path.read_text()
        nb = nbformat.reads(text, as_version=4)
        for i, cell in enumerate(nb.cells):  # ids are kept when present, created once when not
            cell.setdefault("id", f"{path.stem[:2]}-{i:03d}")
        clean = dumps(normalized(nb, lesson_of(path)))
        if clean != text:
            dirty.append(path)
            if not args.check:
                path.write_text(clean)
    if args.check and dirty:
        print("not normalized (run tools/normalize_notebooks.py on them):", *map(str, dirty), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
