"""Step 1: release. Regenerate the student notebooks in ``lessons/`` from ``solutions/``.

nbgrader's generate_assignment does the work (solutions replaced by stubs, hidden
tests removed, checksums recorded); we run it in a scratch course directory, so
that no gradebook or half-written lesson ever lands in the repository, then copy
the result over ``lessons/<id>/``. ``check=True`` only compares.

Links (:func:`retarget`, :func:`link_problems`): every Colab, Binder and GitHub link is
built from ``REPOSITORY`` and ``BRANCH`` in ``cnn_course/links.py``. A release first
decides which repository the links name (:func:`link_target`: ``--repository``, else a
GitHub ``origin``, else what ``links.py`` records), rewrites ``links.py`` when that
differs, and regenerates the lesson headers in ``solutions/`` and the README's lessons
table; ``lessons/`` follows from the solutions. ``--check`` compares everything with
what ``links.py`` records and never with ``origin``, so a clone from anywhere (a CI
mirror, a fork) passes while its files agree with each other.
"""

from __future__ import annotations

import filecmp
import importlib.util
import pathlib
import re
import shutil
import tempfile

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

from .config import CODE_STUB, course_config, ensure_tools_on_path, lesson_ids


class ReleaseError(RuntimeError):
    pass


def generate(root: pathlib.Path, lessons: list[str], out_dir: pathlib.Path) -> None:
    """Write the student version of each lesson to ``out_dir/<id>/`` with nbgrader."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    ensure_tools_on_path()
    with tempfile.TemporaryDirectory(prefix="cnn-release-") as scratch:
        scratch = pathlib.Path(scratch)
        for lesson in lessons:
            shutil.copytree(root / "solutions" / lesson, scratch / "source" / lesson,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        config = course_config(scratch, source="source", release="release")
        api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
        for lesson in lessons:
            result = api.generate_assignment(lesson)
            if not result["success"]:
                raise ReleaseError(f"nbgrader could not generate {lesson}:\n{result.get('log', '')}{result.get('error', '')}")
            shutil.copytree(scratch / "release" / lesson, out_dir / lesson)


class StudentVersion(NbGraderPreprocessor):
    """nbgrader step, right after ``ClearSolutions`` in ``generate_assignment`` (autograder/config.py), so that
    ``nbgrader generate_assignment`` and ``release`` write the same student notebook and nbgrader's checksums
    and gradebook see its final cells:

    - each question's stub becomes ``q_<name> = ...  # your prediction``: the learner sees which name to
      assign, and a notebook run top to bottom stops at the question's test (the answer is still ``...``),
      as at an unwritten function's test, instead of at the question;
    - ``![...](figures/<name>.png)`` points at the repository's copy of the picture (``links.raw_url``,
      following ``links.py`` like every other link): a relative path shows in JupyterLab and on GitHub but
      not in Colab, which opens the notebook alone. The files also ship beside the notebook.
    """

    def preprocess(self, nb, resources):
        from cnn_course import links
        from cnn_course.course import is_question

        lesson = (resources or {}).get("nbgrader", {}).get("assignment")
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "code" and meta.get("solution") and is_question(meta.get("grade_id", "")):
                cell.source = cell.source.replace(CODE_STUB, f"{meta['grade_id']} = ...  # your prediction")
            if cell.cell_type == "markdown" and lesson:
                cell.source = FIGURE_LINK.sub(
                    lambda m: f"]({links.raw_url(f'lessons/{lesson}/figures/{m.group(1)}')})", cell.source)
        return nb, resources


FIGURE_LINK = re.compile(r"\]\(figures/([^)\s]+\.png)\)")


def _tree(path: pathlib.Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()} if path.is_dir() else set()


TOOLS = pathlib.Path(__file__).resolve().parent.parent / "tools"


def _tool(name: str):
    """``tools/<name>.py`` of this checkout, as a module."""
    spec = importlib.util.spec_from_file_location(f"cnn_tools_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _links(root: pathlib.Path):
    """``cnn_course.links`` as imported, set to what ``root``'s own ``links.py`` records (when it has one)."""
    from cnn_course import links

    own = root / "cnn_course" / "links.py"
    if own.is_file():
        links.REPOSITORY, links.BRANCH = links.recorded(own.read_text(encoding="utf-8"))
    return links


def link_target(root: pathlib.Path, repository: str | None = None, branch: str | None = None,
                keep: bool = False) -> tuple[str, str, str]:
    """``(owner/name, branch, where they come from)`` that the links should name.

    ``repository`` (``--repository``) wins; else, unless ``keep``, the ``origin`` remote
    when it is on GitHub (with its default branch); else what ``links.py`` records.
    ``branch`` (``--branch``) replaces the branch in every case.
    """
    links = _links(root)
    recorded = (links.REPOSITORY, links.BRANCH)
    if repository:
        return repository, branch or recorded[1], "--repository"
    found, default_branch = (None, None) if keep else links.origin(root)
    if found:
        return found, branch or default_branch or recorded[1], "the origin remote"
    return recorded[0], branch or recorded[1], "cnn_course/links.py"


def retarget(root: pathlib.Path, repository: str, branch: str) -> bool:
    """Make ``links.py`` name ``repository`` and ``branch``; regenerate the lesson headers and README table.

    Returns whether ``links.py`` changed. The lessons follow with the release itself.
    """
    links = _links(root)
    source = root / "cnn_course" / "links.py"  # a course folder without one (CNN_COURSE_ROOT) keeps the package's
    try:
        old = source.read_text(encoding="utf-8") if source.is_file() else None
        changed = old is not None and links.with_settings(old, repository, branch) != old
        if changed:
            source.write_text(links.with_settings(old, repository, branch), encoding="utf-8")
        else:
            links.with_settings("", repository, branch)  # the names are checked all the same
    except ValueError as exc:
        raise ReleaseError(str(exc)) from None
    links.REPOSITORY, links.BRANCH = repository, branch  # what every link function reads, from now on
    normalize = _tool("normalize_notebooks")
    for path in sorted(root.glob("solutions/*/*.ipynb")):
        lesson = normalize.lesson_of(path)
        if lesson and _stale_header(normalize, path, lesson):
            normalize.main([str(path)])
    readme = root / "README.md"
    if readme.is_file():
        table = _tool("lessons_table")
        text = readme.read_text(encoding="utf-8")
        if table.BEGIN in text:
            readme.write_text(table.with_table(text), encoding="utf-8")
    return changed


def _stale_header(normalize, path: pathlib.Path, lesson: str) -> bool:
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source
             for c in nbformat.read(path, as_version=4).cells}
    return (cells.get("colab_badge") != normalize.badge_source(lesson)
            or cells.get("colab_setup") != normalize.colab_setup_source(lesson))


def link_problems(root: pathlib.Path, repository: str | None = None, branch: str | None = None) -> list[str]:
    """Where the links disagree with ``links.py`` (or with ``repository``/``branch`` when given)."""
    links = _links(root)
    problems = []
    if repository and repository != links.REPOSITORY or branch and branch != links.BRANCH:
        problems.append(f"cnn_course/links.py names {links.REPOSITORY} (branch {links.BRANCH}), "
                        f"not {repository or links.REPOSITORY} (branch {branch or links.BRANCH})")
    normalize = _tool("normalize_notebooks")
    for path in sorted(root.glob("solutions/*/*.ipynb")):
        lesson = normalize.lesson_of(path)
        if lesson and _stale_header(normalize, path, lesson):
            problems.append(f"{path.relative_to(root)}: Colab/Binder header does not match cnn_course/links.py")
    readme = root / "README.md"
    if readme.is_file() and _tool("lessons_table").BEGIN in readme.read_text(encoding="utf-8"):
        if _tool("lessons_table").main(["--check", "--readme", str(readme)]) != 0:
            problems.append("README.md: the lessons table does not match cnn_course/links.py")
    return problems


def stale_files(generated: pathlib.Path, committed: pathlib.Path) -> list[str]:
    """Paths under ``committed`` that differ from, are missing from, or are extra to ``generated``."""
    ours, theirs = _tree(generated), _tree(committed)
    stale = sorted(ours ^ theirs)
    stale += sorted(f for f in ours & theirs if not filecmp.cmp(generated / f, committed / f, shallow=False))
    return stale


def release(root: pathlib.Path, lessons: list[str] | None = None, check: bool = False) -> list[str]:
    """Regenerate ``lessons/`` (or, with ``check``, list what is stale). Returns the stale paths."""
    lessons = lessons or lesson_ids(root)
    with tempfile.TemporaryDirectory(prefix="cnn-release-out-") as out:
        out = pathlib.Path(out)
        generate(root, lessons, out)
        stale = [f"lessons/{lesson}/{f}" for lesson in lessons
                 for f in stale_files(out / lesson, root / "lessons" / lesson)]
        known = set(lesson_ids(root))
        orphans = [p for p in (root / "lessons").glob("[0-9][0-9]_*") if p.is_dir() and p.name not in known]
        stale += [f"lessons/{p.name}/ (no solutions/{p.name})" for p in orphans]
        if check:
            return stale
        for lesson in lessons:
            target = root / "lessons" / lesson
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(out / lesson, target)
        for orphan in orphans:
            shutil.rmtree(orphan)
    return stale
