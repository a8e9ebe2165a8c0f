"""Step 2b: repair. Turn any notebook an honest student could produce into one nbgrader grades correctly.

Runs between collect and grade (and inside ``check``, so the two agree). Every change
it makes is written down as a plain note for the grades.csv reason. What it repairs:

- the file: a byte-order mark, UTF-16, Windows line endings, missing or duplicated
  cell ids, editor metadata nbformat rejects, any nbformat 4.x (or 3);
- the grade ids nbgrader relies on (nbgrader fails the whole notebook on a duplicated
  grade id: its DeduplicateIds leaves ``nbgrader: {}``, which CheckCellMetadata rejects
  with "SchemaTooOldError"): a duplicated test or locked cell is dropped (the
  instructor's is restored), of duplicated solution cells the *last* is graded and the
  earlier copies run as ordinary cells, as a kernel would run them; ids of another lesson
  become ordinary cells; metadata an editor rewrote is the release's again;
- solution cells split in two (merged back when a part does not compile alone), turned
  into markdown or raw (code again), dragged below tests that use them or above the
  setup they need (moved back), or retyped without their grading mark (the cell that
  defines the function); locked cells an editor stripped of their mark (by their code);
- test and setup cells deleted, altered or retyped (restored; "altered" only when the
  code differs, not its line endings or trailing spaces); the kernel name.

Last, it marks the release's demonstration cells (:func:`mark_demonstrations`), which the
grading kernel leaves out: no grade depends on them.

nbgrader's own repairs still run when grading (OverwriteCells restores locked cells' source,
type and points from the gradebook); they are repeated here because ``check`` has no
gradebook (OverwriteCells' ``add_missing_cells`` would also put a deleted test cell back,
but only after a neighbour that is itself graded or a solution, and with a comment added
to its code).
Nothing here runs student code.
"""

from __future__ import annotations

import ast
import copy
import functools
import json
import pathlib
import re
import secrets
import shutil
import tempfile
import warnings

import nbformat
from nbformat import NotebookNode

# What browsers, Colab, Canvas and file managers do to a notebook's name.
_NAME_NOISE = re.compile(r"^(?:copy[ _]of[ _]|copia de |kopie von |copie de )+|(?: - copy| \(\d+\)|-\d+|_\d+| copy)+$",
                         re.IGNORECASE)
# The whole lesson folder a check or a kernel gets, at most (the course's files plus a checkpoint).
LESSON_FILES_MAX_BYTES = 512 * 2**20
# Files a lesson writes that its later cells read back (lesson 08's trained model).
LESSON_OUTPUTS = {"08_cifar10_on_gpu": ["cifar10_model.pt"]}


class Unreadable(Exception):
    """The file is not a notebook that can be repaired; the message says why, plainly."""


# -- the file -----------------------------------------------------------------------------


def _decode(data: bytes) -> tuple[str, list[str]]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), ["the notebook was saved as UTF-16 text (read as such)"]
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), ["the file started with a byte-order mark (removed)"]
    return data.decode("utf-8"), []


def _fresh_id(taken: set[str]) -> str:
    while (new := secrets.token_hex(4)) in taken:
        pass
    return new


def read(path: pathlib.Path) -> tuple[NotebookNode, list[str]]:
    """The notebook at ``path``, with file-level problems repaired, and notes saying which."""
    try:
        text, notes = _decode(path.read_bytes())
    except UnicodeDecodeError:
        raise Unreadable("the notebook file is not UTF-8 text (was it saved by Jupyter?)") from None
    except OSError as exc:
        raise Unreadable(f"the notebook could not be read: {exc.strerror}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Unreadable(f"the notebook is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                         "was it edited outside Jupyter?") from None
    if not isinstance(raw, dict) or "cells" not in raw and "worksheets" not in raw:
        raise Unreadable("the file is JSON but not a Jupyter notebook (no 'cells')")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
            for cell in nb.cells:  # fields some tools leave out, or add where they do not belong
                cell.setdefault("metadata", {})
                if cell.get("cell_type") == "code":
                    cell.setdefault("outputs", [])
                    cell.setdefault("execution_count", None)
                else:
                    cell.pop("outputs", None)
                    cell.pop("execution_count", None)
            if nb.nbformat_minor < 5 or any("id" not in c for c in nb.cells):
                nb.nbformat_minor = max(nb.nbformat_minor, 5)
            taken: set[str] = set()
            for cell in nb.cells:
                if not re.fullmatch(r"[a-zA-Z0-9-_]{1,64}", str(cell.get("id", ""))) or cell.id in taken:
                    cell.id = _fresh_id(taken)
                taken.add(cell.id)
            _, nb = nbformat.validator.normalize(nb, strip_invalid_metadata=True)
            nb = nbformat.from_dict(nb)
            nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several types for broken structure
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Unreadable(f"the notebook's structure is invalid ({first[:200]})") from None
    crlf = False
    for cell in nb.cells:
        if "\r" in cell.source:
            cell.source, crlf = cell.source.replace("\r\n", "\n").replace("\r", "\n"), True
    if crlf:
        notes.append("Windows line endings in cells converted")
    return nb, notes


def write(nb: NotebookNode, path: pathlib.Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nbformat.write(nb, path)


def lesson_of(name: str, lessons: list[str]) -> str | None:
    """The lesson a notebook's file name means ("Copy of 02_convolution (1).ipynb" -> 02_convolution)."""
    stem = name[:-len(".ipynb")] if name.endswith(".ipynb") else name
    for candidate in (stem, _NAME_NOISE.sub("", stem.strip()).strip()):
        if candidate in lessons:
            return candidate
    return None


def find_notebook(folder: pathlib.Path, lesson: str) -> tuple[pathlib.Path | None, str]:
    """The notebook to grade in a student's lesson folder, and a reason when it is not ``<lesson>.ipynb``.

    ``<lesson>.ipynb`` when present; else the only notebook, or the only one whose name
    is the lesson's with a copy mark ("Copy of ...", "... (1)"); else None and why.
    A link is never picked (it may lead to the instructor's notebook): links are never followed.
    """
    expected = folder / f"{lesson}.ipynb"
    if expected.is_file() and not expected.is_symlink():
        return expected, ""
    links = sorted(p.name for p in folder.glob("*.ipynb") if p.is_symlink())
    found = sorted(p for p in folder.glob("*.ipynb") if p.is_file() and not p.is_symlink())
    if not found:
        return None, f"notebook missing: expected {lesson}.ipynb" + (
            f" ({', '.join(links)} {'is a link' if len(links) == 1 else 'are links'}: links are never followed)"
            if links else "")
    named = [p for p in found if lesson_of(p.name, [lesson])]
    pick = found if len(found) == 1 else named if len(named) == 1 else []
    if pick:
        return pick[0], f"graded '{pick[0].name}' (no {lesson}.ipynb)"
    return None, (f"notebook missing: expected {lesson}.ipynb, found {', '.join(p.name for p in found)} "
                  f"(several notebooks; rename the one to grade to {lesson}.ipynb)")


# -- the cells ----------------------------------------------------------------------------


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {}) or {}


def _gid(cell) -> str | None:
    return _meta(cell).get("grade_id")


def _is_test(meta: dict) -> bool:
    return bool(meta.get("grade")) and not meta.get("solution")


def code_of(source: str) -> str:
    """A cell's code without the differences an editor makes: line endings, tabs, trailing spaces, blank ends."""
    lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.expandtabs(4).rstrip() for line in lines).strip("\n")


@functools.lru_cache(maxsize=4096)
def _python(source: str) -> str:
    """A cell's source as the Python IPython runs (magics and ``!`` commands turned into calls)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


@functools.lru_cache(maxsize=4096)
def compiles(source: str) -> bool:
    """Whether a cell's source is valid IPython."""
    try:
        compile(_python(source), "<cell>", "exec",
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        return True
    except (SyntaxError, ValueError):
        return False


def _as_code(cell: NotebookNode) -> None:
    cell.cell_type, cell.outputs, cell.execution_count = "code", [], None
    cell.pop("attachments", None)


def _defines(source: str, name: str) -> bool:
    try:
        tree = ast.parse(_python(source))
    except (SyntaxError, ValueError):
        return False
    def assigns(node) -> bool:  # the answer to a question: ``q_name = ...``
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        return any(isinstance(t, ast.Name) and t.id == name for t in targets)

    return any((isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == name) or assigns(n)
               for n in tree.body)


def _ordinary(cell: NotebookNode) -> None:
    """Take away a cell's grading mark: it runs, but nbgrader neither grades nor restores it."""
    cell.metadata.pop("nbgrader", None)
    cell.metadata.pop("deletable", None)
    cell.metadata.pop("editable", None)


def _release_meta(release: NotebookNode) -> dict[str, NotebookNode]:
    return {_gid(c): c for c in release.cells if _gid(c)}


def _retype_solutions(nb, released, notes) -> None:
    for cell in nb.cells:
        mine = released.get(_gid(cell))
        if mine is not None and _meta(mine).get("solution") and cell.cell_type != mine.cell_type == "code":
            notes.append(f"solution cell {_gid(cell)} had been turned into {cell.cell_type}; graded as code")
            _as_code(cell)


def _remark_metadata(nb, released, notes) -> None:
    """Release metadata on every cell whose grade id the lesson has; cells marked with other ids become ordinary."""
    for cell in nb.cells:
        if "nbgrader" not in cell.metadata:
            continue
        gid = _gid(cell)
        if gid in released:
            cell.metadata["nbgrader"] = copy.deepcopy(released[gid].metadata["nbgrader"])
        else:
            if gid:
                notes.append(f"a cell marked '{gid}', which this lesson does not have, ran as an ordinary cell")
            _ordinary(cell)


def _merge_split_solutions(nb, released, notes) -> None:
    """A solution cell split where one part does not compile alone: the parts that compile together, one cell."""
    i = 0
    while i < len(nb.cells):
        cell, gid = nb.cells[i], _gid(nb.cells[i])
        parts = [cell]
        for nxt in nb.cells[i + 1:]:
            if nxt.cell_type != "code" or _gid(nxt) not in (None, gid):
                break
            parts.append(nxt)
        if (_meta(cell).get("solution") and cell.cell_type == "code" and len(parts) > 1
                and not (compiles(cell.source) and compiles(parts[1].source))):
            for n in range(2, len(parts) + 1):
                joined = "\n".join(p.source for p in parts[:n])
                if compiles(joined):
                    cell.source = joined
                    del nb.cells[i + 1:i + n]
                    notes.append(f"solution cell {gid} was split into {n} cells; graded them as one")
                    break
        i += 1


def _deduplicate(nb, released, notes) -> None:
    """One cell per grade id: nbgrader fails a notebook with duplicated grade ids (SchemaTooOldError)."""
    by_id: dict[str, list[int]] = {}
    for i, cell in enumerate(nb.cells):
        if _gid(cell):
            by_id.setdefault(_gid(cell), []).append(i)
    drop: set[int] = set()
    for gid, where in by_id.items():
        if len(where) < 2:
            continue
        meta = _meta(nb.cells[where[0]])
        if meta.get("solution"):
            for i in where[:-1]:
                _ordinary(nb.cells[i])
            notes.append(f"solution cell {gid} appeared {len(where)} times; graded the last copy, "
                         "the earlier ones ran as ordinary cells")
            continue
        original = code_of(released[gid].source) if gid in released else None
        keep = next((i for i in where if code_of(nb.cells[i].source) == original), where[0])
        drop.update(i for i in where if i != keep)
        what = "test cell" if _is_test(meta) else "cell"
        notes.append(f"your duplicated {what} {gid} was removed" + (" (the instructor's is graded)" if _is_test(meta)
                                                                    else ""))
    nb.cells = [c for i, c in enumerate(nb.cells) if i not in drop]


def _remark_by_code(nb, release, notes) -> None:
    """Locked cells that lost nbgrader's mark (an editor that drops cell metadata) get it back where
    their code is the release's, so they are graded where they stand instead of restored elsewhere."""
    present = {_gid(c) for c in nb.cells}
    unmarked = {}
    for cell in nb.cells:
        if "nbgrader" not in cell.metadata:
            unmarked.setdefault((cell.cell_type, code_of(cell.source)), []).append(cell)
    found = []
    for mine in release.cells:
        meta, key = _meta(mine), (mine.cell_type, code_of(mine.source))
        if meta.get("locked") and not meta.get("solution") and meta["grade_id"] not in present and unmarked.get(key):
            unmarked[key].pop(0).metadata["nbgrader"] = copy.deepcopy(mine.metadata["nbgrader"])
            found.append(meta["grade_id"])
    if found:
        notes.append(f"cells that had lost their grading marks, recognised by their code: {', '.join(found)}")


def _remark_retyped_solutions(nb, release, notes) -> None:
    """A solution cell that lost its grading mark (retyped, pasted, an editor): the last cell defining it."""
    present = {_gid(c) for c in nb.cells}
    for mine in release.cells:
        gid = _gid(mine)
        if not _meta(mine).get("solution") or mine.cell_type != "code" or gid in present:
            continue
        candidates = [c for c in nb.cells if c.cell_type == "code" and not _gid(c) and _defines(c.source, gid)]
        if candidates:
            candidates[-1].metadata["nbgrader"] = copy.deepcopy(mine.metadata["nbgrader"])
            notes.append(f"solution cell {gid} had lost its grading mark; graded the last cell that defines {gid}")


def _order_solutions(nb, release, notes) -> None:
    """Each solution cell runs after the setup cells before it in the release and before every test cell
    after it (its own and later exercises', which may call it), however the student dragged the cells."""
    order = [(_gid(c), _meta(c), c.cell_type) for c in release.cells if _gid(c)]
    for rank, (solution, meta, _) in enumerate(order):
        if not meta.get("solution"):
            continue
        index = {_gid(c): i for i, c in enumerate(nb.cells) if _gid(c)}
        if solution not in index:
            continue
        setup = [index[g] for g, m, kind in order[:rank] if g in index and kind == "code" and m.get("locked")
                 and not m.get("grade") and not m.get("solution")]
        if setup and max(setup) > index[solution]:
            nb.cells.insert(max(setup), nb.cells.pop(index[solution]))
            notes.append(f"solution cell {solution} was above the setup cells it needs; moved below them")
            index = {_gid(c): i for i, c in enumerate(nb.cells) if _gid(c)}
        tests = [index[g] for g, m, _ in order[rank + 1:] if g in index and _is_test(m)]
        if tests and min(tests) < index[solution]:
            nb.cells.insert(min(tests), nb.cells.pop(index[solution]))
            notes.append(f"solution cell {solution} was below test cells that use it; moved above them")


def restore_locked(nb, release, source=None) -> list[str]:
    """Put back test and setup cells the student deleted, altered or retyped, where the release has them.

    nbgrader restores the *source* of locked cells it finds, but a deleted test cell
    simply has no grade. "Altered" means the code differs from the release's (and the
    source's), not its line endings or trailing spaces.
    """
    original = {_gid(c): code_of(c.source) for c in (source or release).cells}
    deleted, altered, retyped, setup = [], [], [], []
    position = 0
    for cell in release.cells:
        meta = _meta(cell)
        gid = meta.get("grade_id")
        if not gid or cell.cell_type != "code":
            continue
        locked = meta.get("locked") and not meta.get("solution")
        index = next((i for i, c in enumerate(nb.cells) if _gid(c) == gid), None)
        if index is not None:
            mine = nb.cells[index]
            changed = code_of(mine.source) not in (code_of(cell.source), original.get(gid))
            if locked and (mine.cell_type != "code" or changed):
                if not meta.get("grade"):
                    setup.append(gid)
                elif changed:
                    altered.append(gid)
                else:
                    retyped.append(f"{gid} (turned into {mine.cell_type})")
                nb.cells[index] = restored = copy.deepcopy(cell)
                restored.id = mine.get("id", restored.get("id"))
            position = index + 1
        elif locked:
            cell = copy.deepcopy(cell)
            taken = {c.get("id") for c in nb.cells}
            if cell.get("id") in taken:
                cell.id = _fresh_id(taken)
            nb.cells.insert(position, cell)
            position += 1
            (deleted if meta.get("grade") else setup).append(gid)
    notes = []
    if deleted:
        notes.append(f"test cells deleted and restored: {', '.join(deleted)}")
    if altered:
        notes.append(f"test cells were altered and restored: {', '.join(altered)}")
    if retyped:
        notes.append(f"test cells restored as code: {', '.join(retyped)}")
    if setup:
        notes.append(f"setup cells deleted or changed, restored: {', '.join(setup)}")
    return notes


def repair(nb: NotebookNode, release: NotebookNode, source: NotebookNode | None = None) -> list[str]:
    """Repair ``nb`` in place against the lesson's ``release`` (student) notebook; notes on what changed.

    ``source`` (the instructor's notebook, hidden tests included) only decides whether a
    test cell counts as altered; without it the release alone does.
    """
    released = _release_meta(release)
    notes: list[str] = []
    nb.metadata["kernelspec"] = copy.deepcopy(release.metadata.get("kernelspec", nb.metadata.get("kernelspec", {})))
    _retype_solutions(nb, released, notes)
    _remark_metadata(nb, released, notes)
    _remark_by_code(nb, release, notes)
    _merge_split_solutions(nb, released, notes)
    _deduplicate(nb, released, notes)
    _remark_retyped_solutions(nb, release, notes)
    _order_solutions(nb, release, notes)
    notes += restore_locked(nb, release, source)
    mark_demonstrations(nb, release)
    return notes


def mark_demonstrations(nb: NotebookNode, release: NotebookNode) -> None:
    """Mark the code cells the release has without a grading role (pictures, printed numbers, training runs),
    even where the student edited them: ``metadata.autograder.demonstration``. The grading kernel leaves them out
    (:class:`autograder.execute.ResilientExecute`), because no grade depends on them: the tests see only the
    setup, solution and test cells and the cells the student added, which is all :mod:`autograder.verify` runs.
    A cell the student added (an id the release does not have) is not marked: it may define a helper."""
    demos = {c.get("id") for c in release.cells if c.cell_type == "code" and not _meta(c)} - {None}
    for cell in nb.cells:
        cell.metadata.pop("autograder", None)  # only the grader marks cells
        if cell.cell_type == "code" and not _meta(cell) and cell.get("id") in demos:
            cell.metadata["autograder"] = {"demonstration": True}


def repair_submission(notebook: pathlib.Path, lesson: str, release: pathlib.Path,
                      source: pathlib.Path | None = None) -> list[str]:
    """Repair the student's ``notebook`` into ``<lesson>.ipynb`` beside it, the only notebook left there.

    For grading: ``notebook`` is in the grader's own copy of the student's folder.
    Returns the notes for the reason, the file's name first when it was not ``<lesson>.ipynb``.
    """
    nb, notes = read(notebook)
    if notebook.name != f"{lesson}.ipynb":
        notes.insert(0, f"graded '{notebook.name}'")
    notes += repair(nb, nbformat.read(release, as_version=4),
                    nbformat.read(source, as_version=4) if source else None)
    for other in notebook.parent.glob("*.ipynb"):
        other.unlink()
    write(nb, notebook.parent / f"{lesson}.ipynb")
    return notes


# -- the files a run needs -------------------------------------------------------------------


def _shipped(lesson: str, course: pathlib.Path | None) -> pathlib.Path:
    from .config import course_root

    return (course or course_root()) / "lessons" / lesson


def lesson_files(lesson: str | None, folder: pathlib.Path, course: pathlib.Path | None = None,
                 max_bytes: int = LESSON_FILES_MAX_BYTES) -> list[pathlib.Path]:
    """The files a run of ``lesson`` needs: the course's lesson folder's own files (notebooks and instructor
    figures left out),
    plus what the student's ``folder`` holds of the files the lesson writes (lesson 08's checkpoint).

    Never the rest of ``folder`` (a home folder, Downloads, /tmp). Raises ValueError, saying
    which files, when they add up to more than ``max_bytes``. No lesson: no files.
    """
    if not lesson:
        return []
    shipped = _shipped(lesson, course)
    skip = {".ipynb_checkpoints", "__pycache__", "figures"}  # figures: pictures for the markdown, read by no code
    files = [p for p in sorted(shipped.rglob("*")) if p.is_file() and p.suffix != ".ipynb"
             and not skip & set(p.relative_to(shipped).parts)] if shipped.is_dir() else []
    files += [folder / name for name in LESSON_OUTPUTS.get(lesson, []) if (folder / name).is_file()]
    total = sum(p.stat().st_size for p in files)
    if total > max_bytes:
        biggest = ", ".join(f"{p.name} ({p.stat().st_size >> 20} MiB)"
                            for p in sorted(files, key=lambda p: -p.stat().st_size)[:3])
        raise ValueError(f"the files lesson {lesson} needs add up to {total >> 20} MiB, more than the "
                         f"{max_bytes >> 20} MiB allowed: {biggest}")
    return files


def staged(lesson: str | None, folder: pathlib.Path, course: pathlib.Path | None = None) -> pathlib.Path:
    """A fresh temporary folder holding :func:`lesson_files` and nothing else (the caller removes it)."""
    files = lesson_files(lesson, folder, course)
    shipped = _shipped(lesson or ".", course)
    stage = pathlib.Path(tempfile.mkdtemp(prefix="cnn-check-"))
    for path in files:
        target = stage / (path.relative_to(shipped) if path.is_relative_to(shipped) else path.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return stage
