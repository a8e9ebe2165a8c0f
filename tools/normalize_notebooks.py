"""Keep solution notebooks clean: no outputs, no execution counts, one kernel spec.

    python tools/normalize_notebooks.py solutions/*/*.ipynb          # fix in place
    python tools/normalize_notebooks.py --check solutions/*/*.ipynb  # CI: exit 1 if any would change

Authors may draft a lesson as a jupytext "percent" script and convert it with
`jupytext --to ipynb draft.py -o solutions/<id>/<id>.ipynb`; this tool then drops
jupytext's metadata and sets the course's standard notebook metadata.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import nbformat

NOTEBOOK_METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


def normalized(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb.metadata = nbformat.from_dict(NOTEBOOK_METADATA)
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
        clean = dumps(normalized(nb))
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
