"""Build the course book: a static HTML site of every lesson with its figures and outputs.

    python tools/build_book.py                  # -> artifacts/book/html/index.html
    python tools/build_book.py --jobs 2 --lessons 02_convolution,03_padding_and_stride

The pages are the *released* lessons (``lessons/``: the learner's stub in every
exercise, no hidden test) carrying the outputs of the instructor's run: each solution
notebook is executed top to bottom in a copy of its folder (lesson 08 and 09 in smoke
mode, ``CNN_COURSE_MODE=smoke``, unless the environment says otherwise), and the
outputs of each instructor cell are put onto the released cell with the same cell id.
Only demo and setup cells get outputs: solution cells and graded test cells keep none
(the instructor's run of them shows what the answer prints, and a test cell's output
could show a hidden value), and error outputs are dropped (a traceback prints source
lines). Interactive widgets become static snapshots (their settings and the figure they
drew), since a static page has no kernel behind its sliders.

The site itself is built by Sphinx with MyST-NB and the Sphinx Book Theme (the engine of
Jupyter Book 1), with notebook execution off: it renders the stored outputs. Before
anything is reported as built, every file of the site is searched for every solution
region and hidden-test block of ``solutions/`` (``tools/book_leaks.py``); a leak fails
the build.

The executed instructor notebooks are cached in ``artifacts/instructor_run`` (``--cache``),
by the hash of the solution folder, the ``cnn_course`` package and the mode, so rebuilding
after a text edit costs seconds. They hold the solutions: the cache is kept apart from the
book's folder, and only ``OUT/html`` is the book.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import hashlib
import html
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import book_leaks  # noqa: E402
import nbformat  # noqa: E402

from autograder.execute import local_kernel_manager  # noqa: E402
from cnn_course import course, links  # noqa: E402

CONF_DIR = ROOT / "book"
DEFAULT_OUT = ROOT / "artifacts" / "book"
DEFAULT_CACHE = ROOT / "artifacts" / "instructor_run"  # solutions inside: never publish
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
CELL_TIMEOUT_S = 600
MODE_LESSONS = ("08_cifar10_on_gpu", "09_inside_the_cnn")  # whose outputs depend on CNN_COURSE_MODE
MODE_NOTE = {
    "smoke": "The figures and numbers on this page come from a short run (`CNN_COURSE_MODE=smoke`: a small fake "
             "data set in CIFAR-10's format, generated on the spot, and a short training run on a CPU), so that the "
             "book builds in minutes. A run on a GPU with the real data trains longer and reaches far higher accuracy.",
    "quick": "The figures and numbers on this page come from a shortened training run (`CNN_COURSE_MODE=quick`); "
             "a full run trains for longer and reaches higher accuracy.",
}
OUTPUT_NOTE = ("This page shows the lesson as a learner gets it, with the outputs of the instructor's run: "
               "each exercise cell holds the stub you fill in, and its tests are shown without output. "
               "Interactive widgets appear as snapshots; open the notebook to move their sliders.")


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_test_cell(cell) -> bool:
    meta = _meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution")


def is_solution_cell(cell) -> bool:
    return bool(_meta(cell).get("solution"))


# ---------------------------------------------------------------- running the instructor's notebooks

def mode() -> str:
    return os.environ.get("CNN_COURSE_MODE") or "smoke"


def cache_key(lesson: str) -> str:
    digest = hashlib.sha256(mode().encode())
    for folder in (ROOT / "solutions" / lesson, ROOT / "cnn_course"):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and ".ipynb_checkpoints" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def execute(lesson: str, cache_dir: pathlib.Path) -> tuple[str, float, bool]:
    """Run the instructor's notebook of ``lesson`` (or take it from the cache); return (lesson, seconds, cached)."""
    from nbclient import NotebookClient

    target = cache_dir / f"{lesson}.ipynb"
    key = cache_key(lesson)
    if target.is_file() and nbformat.read(target, as_version=4).metadata.get("book_cache_key") == key:
        return lesson, 0.0, True
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"book-{lesson}-") as tmp:
        # A copy, so that files the lesson writes (checkpoints, data) stay out of solutions/.
        shutil.copytree(ROOT / "solutions" / lesson, pathlib.Path(tmp) / lesson,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        path = pathlib.Path(tmp) / lesson / f"{lesson}.ipynb"
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, km=local_kernel_manager(), timeout=CELL_TIMEOUT_S, allow_errors=True,
                       store_widget_state=True, resources={"metadata": {"path": str(path.parent)}}).execute()
    nb.metadata["book_cache_key"] = key
    nb.metadata["book_mode"] = mode()
    cache_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return lesson, time.monotonic() - start, False


def execute_all(lessons: list[str], cache_dir: pathlib.Path, jobs: int) -> None:
    # Figures inline (a plain Agg backend would draw them nowhere); the kernels inherit this.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    os.environ.setdefault("CNN_COURSE_MODE", mode())
    with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        for lesson, seconds, cached in pool.map(execute, lessons, [cache_dir] * len(lessons)):
            print(f"  {lesson}: {'cached' if cached else f'ran in {seconds:.0f} s'}", flush=True)


# ---------------------------------------------------------------- widgets as snapshots

def _model_id(ref) -> str:
    return ref[len("IPY_MODEL_"):] if isinstance(ref, str) and ref.startswith("IPY_MODEL_") else str(ref)


def widget_snapshot(model_id: str, state: dict, depth: int = 0) -> tuple[list[str], list[dict]]:
    """(settings lines, outputs) of a widget and its children, as they were when the run ended."""
    model = state.get(model_id)
    if model is None or depth > 20:
        return [], []
    name, values = model.get("model_name", ""), model.get("state", {})
    lines: list[str] = []
    outputs: list[dict] = []
    if name == "OutputModel":
        outputs.extend(copy.deepcopy(values.get("outputs", [])))
    elif name in ("HTMLModel", "HTMLMathModel", "LabelModel"):
        text = re.sub(r"<[^>]+>", "", html.unescape(str(values.get("value", "")))).strip()
        if text:
            lines.append(text)
    elif "value" in values and name not in ("LayoutModel",) and not name.endswith("StyleModel"):
        label = values.get("description") or name.replace("Model", "")
        if "Progress" in name:
            lines.append(f"{label}: {values.get('value')} of {values.get('max')}".strip())
        else:
            lines.append(f"{label}: {values.get('value')}")
    for child in values.get("children", []) or []:
        child_lines, child_outputs = widget_snapshot(_model_id(child), state, depth + 1)
        lines.extend(child_lines)
        outputs.extend(child_outputs)
    return lines, outputs


def snapshot_outputs(output: dict, state: dict) -> list[dict]:
    """A widget-view output replaced by static outputs: its settings as text, then what it displayed."""
    lines, outputs = widget_snapshot(output["data"][WIDGET_VIEW]["model_id"], state)
    snapshot = []
    if lines:
        settings = textwrap.fill(", ".join(lines), width=90)
        header = "[a snapshot of an interactive widget; in the notebook you can change it]"
        snapshot.append(nbformat.v4.new_output("stream", name="stdout", text=f"{header}\n{settings}\n"))
    for inner in outputs:
        if inner.get("output_type") == "display_data" and WIDGET_VIEW in inner.get("data", {}):
            snapshot.extend(snapshot_outputs(inner, state))
        else:
            snapshot.append(nbformat.from_dict(inner))
    return snapshot


# ---------------------------------------------------------------- released cells with the instructor's outputs

def book_outputs(cell, state: dict) -> list:
    outputs = []
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            continue  # a traceback prints source lines, maybe a solution's
        if output.output_type in ("display_data", "execute_result") and WIDGET_VIEW in output.get("data", {}):
            outputs.extend(snapshot_outputs(output, state))
            continue
        outputs.append(output)
    return outputs


def assemble(lesson: str, cache_dir: pathlib.Path) -> nbformat.NotebookNode:
    """The released notebook of ``lesson`` with the instructor's outputs on its demo and setup cells."""
    released = nbformat.read(ROOT / "lessons" / lesson / f"{lesson}.ipynb", as_version=4)
    executed = nbformat.read(cache_dir / f"{lesson}.ipynb", as_version=4)
    state = executed.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    by_id = {cell.get("id"): cell for cell in executed.cells}
    by_grade_id = {_meta(cell)["grade_id"]: cell for cell in executed.cells if _meta(cell).get("grade_id")}
    for cell in released.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        if is_test_cell(cell) or is_solution_cell(cell):
            continue
        ran = by_grade_id.get(_meta(cell).get("grade_id")) if _meta(cell).get("grade_id") else by_id.get(cell.get("id"))
        if ran is None or ran.cell_type != "code" or is_test_cell(ran) or is_solution_cell(ran):
            raise SystemExit(f"{lesson}: released cell {cell.get('id')} has no matching demo cell in solutions/; "
                             "run python -m autograder release")
        for error in (o for o in ran.get("outputs", []) if o.output_type == "error"):
            print(f"  warning: {lesson}: a demo cell failed in the instructor's run ({error.ename}: {error.evalue}); "
                  "the book shows its other outputs only", file=sys.stderr)
        cell.outputs = book_outputs(ran, state)
        cell.execution_count = ran.get("execution_count")
    notes = [OUTPUT_NOTE]
    run_mode = executed.metadata.get("book_mode", mode())
    if lesson in MODE_LESSONS and run_mode in MODE_NOTE:
        notes.insert(0, MODE_NOTE[run_mode])
    # The notes go right under the lesson's title (the first "# " heading), inside its cell.
    notes_md = "".join(f"\n:::{{note}}\n{note}\n:::\n" for note in notes)
    title = next((c for c in released.cells if c.cell_type == "markdown" and c.source.startswith("# ")), None)
    if title is None:
        released.cells.insert(0, nbformat.v4.new_markdown_cell(notes_md, id="book-note"))
    else:
        heading, _, rest = title.source.partition("\n")
        title.source = f"{heading}\n{notes_md}\n{rest}"
    released.metadata.pop("widgets", None)
    released.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    return released


# ---------------------------------------------------------------- the index and the site

def index_markdown(lessons: list[str]) -> str:
    rows = ["| # | lesson | you will | time | open |", "|---|---|---|---|---|"]
    for lesson in course.ALL:
        if lesson.id not in lessons:
            continue
        gpu = " (GPU)" if lesson.gpu else ""
        page = f"{lesson.id}/{lesson.id}.ipynb"
        rows.append(f"| {lesson.number} | [{lesson.title}]({page}){gpu} | {'; '.join(lesson.objectives)} | "
                    f"{lesson.minutes} min | [Colab]({links.colab_url(lesson.id)}) · "
                    f"[Binder]({links.binder_url(lesson.id)}) · [notebook]({links.github_url(links.lesson_path(lesson.id))}) |")
    toc = "\n".join(f"{lesson}/{lesson}" for lesson in lessons)
    return f"""# Convolutional neural networks, from first principles to a GPU

A course in Jupyter notebooks that takes you from the limits of fully-connected layers,
through convolution arithmetic (padding, stride, dilation), pooling, batch normalisation
and receptive fields, to a CIFAR-10 network trained on a GPU, and then inside it. In every
lesson you implement the idea yourself, first in NumPy and then in PyTorch, and
auto-graded checks tell you what is wrong rather than just that something is.

This book is the course to read: every lesson with its figures and outputs, from the
instructor's run. The exercises show the stub you fill in; to do them, open a lesson on
Colab or Binder, or clone [the repository]({links.github_url()}) and run it in JupyterLab.

{chr(10).join(rows)}

[Launch the whole course on Binder]({links.binder_url()})

```{{toctree}}
:hidden:
:maxdepth: 1

{toc}
```
"""


def build(out: pathlib.Path, lessons: list[str], jobs: int, cache_dir: pathlib.Path = DEFAULT_CACHE) -> pathlib.Path:
    src, site = out / "src", out / "html"
    started = time.monotonic()
    print(f"== running the instructor's notebooks ({mode()} mode, {jobs} at a time)", flush=True)
    execute_all(lessons, cache_dir, jobs)
    print("== assembling the released lessons with their outputs", flush=True)
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for lesson in lessons:
        # The repository's layout (lessons/<id>/<id>.ipynb), so that links between lessons work as they are.
        shutil.copytree(ROOT / "lessons" / lesson, src / lesson,
                        ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints", "__pycache__"))
        nbformat.write(assemble(lesson, cache_dir), src / lesson / f"{lesson}.ipynb")
    (src / "index.md").write_text(index_markdown(lessons), encoding="utf-8")
    print("== building the site with Sphinx + MyST-NB", flush=True)
    if site.exists():
        shutil.rmtree(site)
    subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going", "-c", str(CONF_DIR),
                    "-d", str(out / "doctrees"), str(src), str(site)], check=True)
    print("== searching every file of the site for solutions and hidden tests", flush=True)
    leaks = book_leaks.find_leaks(site, book_leaks.secrets(ROOT, lessons))
    if leaks:
        shutil.rmtree(site)
        raise SystemExit("the book leaks solution or hidden-test text; site removed:\n" + "\n".join(leaks[:20]))
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    print(f"== built {site / 'index.html'} in {time.monotonic() - started:.0f} s, {size / 2**20:.1f} MiB", flush=True)
    return site


def main(argv: list[str] | None = None) -> int:
    import importlib.util

    needed = ("sphinx", "myst_nb", "sphinx_book_theme", "jupyter_server_mathjax")
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        print(f"missing {', '.join(missing)}: pip install -r book/requirements.txt", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="build folder (default artifacts/book)")
    parser.add_argument("--cache", type=pathlib.Path, default=DEFAULT_CACHE,
                        help="where the instructor's executed notebooks are cached (default artifacts/instructor_run)")
    parser.add_argument("--jobs", type=int, default=2, help="instructor notebooks run at a time")
    parser.add_argument("--lessons", help="comma-separated lesson ids (default: all)")
    args = parser.parse_args(argv)
    from autograder.config import lesson_ids

    lessons = lesson_ids(ROOT)
    if args.lessons:
        wanted = args.lessons.split(",")
        unknown = sorted(set(wanted) - set(lessons))
        if unknown:
            parser.error(f"unknown lessons: {', '.join(unknown)}")
        lessons = [lesson for lesson in lessons if lesson in wanted]
    build(args.out.resolve(), lessons, args.jobs, args.cache.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
