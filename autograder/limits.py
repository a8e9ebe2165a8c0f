"""Time limits that fit the cell: measured on the instructor's notebook when the grading workspace is prepared.

A learner's infinite loop in one function hangs every cell that calls it; with one
global limit (``CELL_TIMEOUT_S``) each of those cells costs the whole limit. Here the
instructor's notebook runs once per lesson and grading run, on the grading machine
(with the lesson's modules imported first when kernels are forked from a warm
process, as they then are), and gets, at most ``CELL_TIMEOUT_S``:

- each test cell ``max(TEST_FLOOR_S, TEST_FACTOR x what it took)``: generous, a slow
  but correct answer must keep its points;
- each solution cell (the student's function, or answer to a ``q_*`` question)
  ``max(SOLUTION_FLOOR_S, SOLUTION_FACTOR x what the instructor's took)``. The instructor's
  take milliseconds (a ``def``; an answer computed by calling the lesson's functions on
  small inputs: under 20 ms in every lesson, and under 60 ms with the slowest correct
  implementation in ``tests/lessons``, loops over pixels included, timed in-process), so
  the floor decides, and it is three times the test cells': a timeout here loses more
  than one test (the name it defines is missing for every test after it, and a cell that
  failed is not replayed after a restart), and the student's cell may hold more than the
  instructor's: an answer computed their own way, a first ``import torch``, a quick check
  of their function at the top level, all on a grading machine busier than the measuring
  run. An infinite loop in a function then costs the kernel ``SOLUTION_FLOOR_S`` per
  question cell that calls it, not ``CELL_TIMEOUT_S``;
- each demo cell (the release's own code, unchanged by the student)
  ``max(DEMO_FLOOR_S, DEMO_FACTOR x what it took)``: generous too, since the grading
  machine is busier than the measuring run (several kernels at once: in CI a 1 s demo cell
  took over 3 s) and a timeout there, though it costs no points (no test depends on a demo
  cell, docs/authoring.md), would put a false "timed out" in an honest student's reason;
  but once a cell of the notebook has timed out (the student's code hangs, and every later
  cell that calls it will), each demo cell gets :func:`after_timeout` of its limit: the
  hang then costs little more than the test cells' limits.

Setup cells, and cells the student wrote or changed (other than solution cells), keep the
global limit.

The measurement is kept per machine, notebook (and ``cnn_course`` package) and policy
(:func:`cached`, under ``~/.cache/cnn-course``), so grading the same lessons again does
not measure again.

Cells are named by :func:`cell_key`: a test cell by its grade id, a solution cell by
``solution:`` and its grade id, any other cell by ``code:`` and a digest of its code
(ignoring line endings and trailing spaces); a grade id has no ``:`` (nbgrader's format),
so the three never collide.
:class:`autograder.execute.ResilientExecute` reads the limits from its ``cell_limits``
trait, ``{lesson: {key: seconds}}``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
import platform
import shutil
import sys
import tempfile

from .config import CELL_TIMEOUT_S, PRELOAD
from .repair import code_of

FIT = os.environ.get("CNN_GRADER_FIT_LIMITS", "1") != "0"  # 0: every cell gets the global limit
TEST_FLOOR_S, TEST_FACTOR = 5.0, 10.0
SOLUTION_FLOOR_S, SOLUTION_FACTOR = 15.0, 10.0
DEMO_FLOOR_S, DEMO_FACTOR = 10.0, 4.0
AFTER_TIMEOUT_FLOOR_S = 2


def cell_key(cell) -> str | None:
    """A test cell's grade id; ``solution:`` and the grade id for a solution code cell; for an unmarked code
    cell, ``code:`` and a digest of its code; None for the rest."""
    meta = cell.metadata.get("nbgrader", {}) or {}
    if meta.get("grade") and not meta.get("solution"):
        return meta.get("grade_id")
    if meta.get("solution") and meta.get("grade_id") and cell.cell_type == "code":
        return "solution:" + meta["grade_id"]
    if meta or cell.cell_type != "code":
        return None
    return "code:" + hashlib.sha1(code_of(cell.source).encode()).hexdigest()[:16]


def limit(key: str, seconds: float) -> int:
    floor, factor = ((DEMO_FLOOR_S, DEMO_FACTOR) if key.startswith("code:") else
                     (SOLUTION_FLOOR_S, SOLUTION_FACTOR) if key.startswith("solution:") else (TEST_FLOOR_S, TEST_FACTOR))
    return int(min(CELL_TIMEOUT_S, max(floor, factor * seconds)) + 0.999)


def after_timeout(seconds: int) -> int:
    """A demo cell's limit once the notebook has had a timeout: a quarter of its fitted limit, at least
    ``AFTER_TIMEOUT_FLOOR_S``."""
    return max(AFTER_TIMEOUT_FLOOR_S, seconds // 4)


def _seconds(cell) -> float | None:
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return None
    parse = datetime.datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def measure(notebook: pathlib.Path, preload: bool = PRELOAD) -> dict[str, int]:
    """Run the instructor's ``notebook`` once (a copy of its folder as the working directory) and
    return the limit of every cell :func:`cell_key` names. Cells that fail get no limit (the global
    one applies)."""
    import nbformat
    from nbclient import NotebookClient

    from . import isolation
    from .execute import local_kernel_manager

    nb = nbformat.read(notebook, as_version=4)
    if preload:  # what the zygote imports before it forks a kernel, left out of the cells' times
        modules = ["ipykernel.kernelapp", *isolation.modules_imported_by([notebook])]
        nb.cells.insert(0, nbformat.v4.new_code_cell(
            f"import importlib\nfor _m in {modules!r}:\n    try:\n        importlib.import_module(_m)\n"
            "    except Exception:\n        pass"))
    with tempfile.TemporaryDirectory(prefix="cnn-measure-") as scratch:
        folder = pathlib.Path(scratch) / "lesson"
        shutil.copytree(notebook.parent, folder, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
        client = NotebookClient(nb, km=local_kernel_manager(), timeout=CELL_TIMEOUT_S, allow_errors=True,
                                record_timing=True, resources={"metadata": {"path": str(folder)}},
                                extra_arguments=["--HistoryManager.hist_file=:memory:", "--IPKernelApp.log_level=ERROR"])
        # configured as a grading kernel is (one thread per library, the smoke mode), found on this PATH
        env = {**os.environ, **isolation.sandbox_env(), "PATH": os.environ.get("PATH", "")}
        client.execute(env=env, cwd=str(folder))
    limits = {}
    for cell in nb.cells[1 if preload else 0:]:
        key, seconds = cell_key(cell), _seconds(cell)
        failed = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
        if key and seconds is not None and not failed:
            limits[key] = max(limits.get(key, 0), limit(key, seconds))
    return limits


def cached(notebook: pathlib.Path) -> pathlib.Path:
    """Where this machine keeps :func:`measure`'s result for this very notebook (and the files beside it),
    this ``cnn_course`` package, Python and policy."""
    import cnn_course

    key = hashlib.sha256(repr((platform.node(), os.cpu_count(), sys.version, CELL_TIMEOUT_S, PRELOAD,
                               TEST_FLOOR_S, TEST_FACTOR, SOLUTION_FLOOR_S, SOLUTION_FACTOR, DEMO_FLOOR_S, DEMO_FACTOR,
                               AFTER_TIMEOUT_FLOOR_S)).encode())
    package = pathlib.Path(cnn_course.__file__).parent
    for path in sorted([*notebook.parent.rglob("*"), *package.rglob("*.py")]):
        if path.is_file() and "__pycache__" not in path.parts:
            key.update(str(path.name).encode() + path.read_bytes())
    cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache")
    return cache / "cnn-course" / "cell-limits" / f"{key.hexdigest()[:32]}.json"


def measure_lessons(source: pathlib.Path, lessons: list[str], into: pathlib.Path) -> dict[str, dict[str, int]]:
    """:func:`measure` every lesson's notebook under ``source``, or take what this machine measured for
    the same notebook before (:func:`cached`); write the limits to ``into`` (JSON)."""
    limits = {}
    for lesson in lessons:
        notebook = source / lesson / f"{lesson}.ipynb"
        try:
            limits[lesson] = load(cached(notebook)) or measure(notebook)
        except Exception as exc:  # noqa: BLE001 - grading goes on with the global limit
            print(f"warning: {lesson}: could not measure its cells' time limits ({type(exc).__name__}: {exc}); "
                  f"every cell gets {CELL_TIMEOUT_S} s", file=sys.stderr)
            continue
        try:
            cached(notebook).parent.mkdir(parents=True, exist_ok=True)
            cached(notebook).write_text(json.dumps(limits[lesson]))
        except OSError:
            pass  # no cache: measured again next time
    into.write_text(json.dumps(limits, indent=1, sort_keys=True))
    return limits


def load(path: pathlib.Path) -> dict[str, dict[str, int]]:
    return json.loads(path.read_text()) if path.is_file() else {}
