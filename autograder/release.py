"""Step 1: release. Regenerate the student notebooks in ``lessons/`` from ``solutions/``.

nbgrader's generate_assignment does the work (solutions replaced by stubs, hidden
tests removed, checksums recorded); we run it in a scratch course directory, so
that no gradebook or half-written lesson ever lands in the repository, then copy
the result over ``lessons/<id>/``. ``check=True`` only compares.
"""

from __future__ import annotations

import filecmp
import pathlib
import shutil
import tempfile

from .config import course_config, ensure_tools_on_path, lesson_ids


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


def _tree(path: pathlib.Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()} if path.is_dir() else set()


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
