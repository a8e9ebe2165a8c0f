"""Every lesson opens on Colab and Binder from the README, and every link comes from cnn_course/links.py."""

from __future__ import annotations

import importlib.util
import pathlib
import re

import nbformat
import pytest

from autograder.config import lesson_ids
from cnn_course import course, links

ROOT = pathlib.Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("lessons_table", ROOT / "tools" / "lessons_table.py")
lessons_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lessons_table)


def test_link_formats():
    assert links.colab_url("02_convolution") == (
        f"https://colab.research.google.com/github/{links.REPOSITORY}/blob/{links.BRANCH}/"
        "lessons/02_convolution/02_convolution.ipynb")
    assert links.binder_url() == f"https://mybinder.org/v2/gh/{links.REPOSITORY}/{links.BRANCH}?urlpath=lab/tree/lessons"
    assert links.binder_url("02_convolution").endswith("?urlpath=lab/tree/lessons/02_convolution/02_convolution.ipynb")
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", links.REPOSITORY) and links.BRANCH


def test_readme_table_is_current():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert lessons_table.with_table(readme) == readme, "the README's lessons table is stale: python tools/lessons_table.py"


@pytest.mark.parametrize("lesson", lesson_ids(ROOT))
def test_every_lesson_has_colab_and_binder_links_in_the_readme(lesson):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert links.colab_url(lesson) in readme and links.binder_url(lesson) in readme
    # the links open the released notebook at that path in the repository
    assert (ROOT / links.lesson_path(lesson)).is_file(), f"{links.lesson_path(lesson)} missing: python -m autograder release"


def test_readme_links_only_to_lessons_that_exist():
    """Each lesson in the catalogue has been written and released, so none of the README's links is dead."""
    missing = [x.id for x in course.ALL if not (ROOT / links.lesson_path(x.id)).is_file()]
    assert not missing, f"the README links to lessons not released yet: {missing}"


def test_no_course_link_is_written_by_hand():
    """Colab, Binder and GitHub links to the course appear only in generated text (header cells, README table)."""
    pattern = re.compile(r"colab\.research\.google\.com/github/|mybinder\.org/v2/gh/|github\.com/" + re.escape(links.REPOSITORY))
    hand_written = []
    for path in [*ROOT.glob("solutions/*/*.ipynb"), *ROOT.glob("docs/*.md"), *ROOT.glob("cnn_course/*.py"), ROOT / "README.md"]:
        if path.name == "links.py" or not path.is_file():
            continue
        if path.suffix == ".ipynb":  # the header cells are generated from links.py
            nb = nbformat.read(path, as_version=4)
            text = "\n".join(c.source for c in nb.cells
                             if c.metadata.get("nbgrader", {}).get("grade_id") not in ("colab_badge", "colab_setup"))
        else:
            text = path.read_text(encoding="utf-8")
        if path.name == "README.md" and lessons_table.BEGIN in text and lessons_table.END in text:
            head, rest = text.split(lessons_table.BEGIN, 1)
            text = head + rest.split(lessons_table.END, 1)[1]
        if pattern.search(text):
            hand_written.append(str(path.relative_to(ROOT)))
    assert not hand_written, f"{hand_written} write a course link by hand; build it with cnn_course.links"
