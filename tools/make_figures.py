"""Draw the lessons' instructor figures: pictures a learner sees before running anything.

    python tools/make_figures.py                    # every lesson that has tools/figures/<id>.py
    python tools/make_figures.py 02_convolution     # one lesson
    python tools/make_figures.py --check            # exit 1 when a PNG is stale, missing or orphaned

Each ``tools/figures/<lesson>.py`` defines one function per picture, ``figure_<name>()``,
returning a matplotlib ``Figure``; it is saved as ``solutions/<lesson>/figures/<name>.png``,
which the lesson's markdown shows as ``![...](figures/<name>.png)`` (the release turns the
path into a URL that also works on GitHub and Colab, and ships the file beside the student
notebook). The PNGs are committed, like ``lessons/``, and CI redraws them and fails when
one differs (``--check``): figures and their code cannot drift apart.

Drawing is deterministic: matplotlib's default style, a fixed DPI, no timestamp or version
in the file.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIGURES = ROOT / "tools" / "figures"
DPI = 100
LINK = re.compile(r"\]\((figures/[^)\s]+\.png)\)")


def figure_functions(lesson: str) -> dict:
    """``{name: function}`` from ``tools/figures/<lesson>.py`` (empty when the lesson has none)."""
    path = FIGURES / f"{lesson}.py"
    if not path.is_file():
        return {}
    spec = importlib.util.spec_from_file_location(f"cnn_figures_{lesson}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name[len("figure_"):]: fn for name, fn in vars(module).items()
            if name.startswith("figure_") and callable(fn)}


def render(fn) -> bytes:
    """The PNG bytes of the figure ``fn`` draws, independent of the machine's style and the date."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(matplotlib.rcParamsDefault):
        fig = fn()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
        plt.close(fig)
    return buffer.getvalue()


def lessons_with_figures() -> list[str]:
    return sorted(p.stem for p in FIGURES.glob("[0-9][0-9]_*.py"))


def referenced(lesson: str) -> set[str]:
    """``figures/<name>.png`` paths the lesson's solution notebook shows in its markdown."""
    import nbformat

    notebook = ROOT / "solutions" / lesson / f"{lesson}.ipynb"
    if not notebook.is_file():
        return set()
    cells = nbformat.read(notebook, as_version=4).cells
    return {m for c in cells if c.cell_type == "markdown" for m in LINK.findall(c.source)}


def problems(lessons: list[str], write: bool) -> list[str]:
    """Draw every figure of ``lessons``; write it (``write``) or report where the committed files differ."""
    found = []
    for lesson in lessons:
        folder = ROOT / "solutions" / lesson / "figures"
        functions = figure_functions(lesson)
        wanted = {f"{name}.png" for name in functions}
        for name, fn in sorted(functions.items()):
            png, path = render(fn), folder / f"{name}.png"
            if write:
                folder.mkdir(parents=True, exist_ok=True)
                if not path.is_file() or path.read_bytes() != png:
                    path.write_bytes(png)
                    print(f"wrote {path.relative_to(ROOT)}")
            elif not path.is_file():
                found.append(f"{path.relative_to(ROOT)}: missing (python tools/make_figures.py {lesson})")
            elif path.read_bytes() != png:
                found.append(f"{path.relative_to(ROOT)}: stale (python tools/make_figures.py {lesson})")
        for path in sorted(folder.glob("*.png")) if folder.is_dir() else []:
            if path.name not in wanted:
                found.append(f"{path.relative_to(ROOT)}: no figure_{path.stem}() in tools/figures/{lesson}.py draws it")
        for link in sorted(referenced(lesson)):
            if pathlib.PurePath(link).name not in wanted:
                found.append(f"solutions/{lesson}/{lesson}.ipynb shows {link}, which no figure function draws")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="lesson ids (default: every lesson with figures)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a figure is stale")
    args = parser.parse_args(argv)
    lessons = args.lessons or sorted(set(lessons_with_figures()) | {
        p.parent.parent.name for p in ROOT.glob("solutions/*/figures/*.png")})
    found = problems(lessons, write=not args.check)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
