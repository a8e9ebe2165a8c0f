"""``release`` points every link at the checkout's own repository: fake remotes of each form, a fork, CI clones."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from cnn_course import links

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSONS = ["00_start_here"]  # a one-lesson course: each release runs nbgrader on every lesson
UPSTREAM = links.REPOSITORY


@pytest.mark.parametrize("url, expected", [
    ("https://github.com/someone/their-fork.git", "someone/their-fork"),
    ("https://github.com/someone/their-fork", "someone/their-fork"),
    ("https://github.com/someone/their-fork/", "someone/their-fork"),
    ("https://x-access-token@github.com/some-org/cnn.course.git", "some-org/cnn.course"),
    ("git@github.com:someone/their-fork.git", "someone/their-fork"),
    ("ssh://git@github.com/someone/their-fork.git", "someone/their-fork"),
    ("ssh://git@github.com:22/someone/their-fork", "someone/their-fork"),
    ("https://gitlab.com/someone/their-fork.git", None),
    ("git@gitlab.example.edu:someone/their-fork.git", None),
    ("/srv/mirrors/cnn-course.git", None),
    ("https://github.com/someone", None),
])
def test_github_remote_forms(url, expected):
    assert links.github_repository(url) == expected


def _git(folder: pathlib.Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, timeout=60)


def test_origin_reads_the_remote_and_its_default_branch(tmp_path):
    _git(tmp_path, "init", "-q")
    assert links.origin(tmp_path) == (None, None)  # no origin at all
    _git(tmp_path, "remote", "add", "origin", "/srv/mirror.git")
    assert links.origin(tmp_path) == (None, None)  # not GitHub: a CI runner's mirror
    for url in ("https://github.com/someone/their-fork.git", "ssh://git@github.com/someone/their-fork.git",
                "git@github.com:someone/their-fork.git"):
        _git(tmp_path, "remote", "set-url", "origin", url)
        assert links.origin(tmp_path) == ("someone/their-fork", None), url
    _git(tmp_path, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/term-2027")
    assert links.origin(tmp_path) == ("someone/their-fork", "term-2027")


def test_settings_round_trip_and_refuse_odd_names():
    text = (ROOT / "cnn_course" / "links.py").read_text(encoding="utf-8")
    assert links.recorded(text) == (links.REPOSITORY, links.BRANCH)
    new = links.with_settings(text, "someone/their-fork", "term-2027")
    assert links.recorded(new) == ("someone/their-fork", "term-2027")
    assert new.replace("someone/their-fork", links.REPOSITORY).replace('"term-2027"', f'"{links.BRANCH}"') == text
    for repository, branch in [("someone", "main"), ("a/b c", "main"), ('a/b"; import os', "main"), ("a/b", "x..y")]:
        with pytest.raises(ValueError):
            links.with_settings(text, repository, branch)


def _course(tmp_path: pathlib.Path, origin: str | None) -> pathlib.Path:
    """A clone of the course with two lessons, whose ``origin`` is ``origin``."""
    course = tmp_path / "course"
    for name in ("cnn_course", "autograder", "tools"):
        shutil.copytree(ROOT / name, course / name, ignore=shutil.ignore_patterns("__pycache__"))
    for lesson in LESSONS:
        for kind in ("solutions", "lessons"):
            shutil.copytree(ROOT / kind / lesson, course / kind / lesson)
    for name in ("README.md", "nbgrader_config.py"):
        shutil.copy2(ROOT / name, course / name)
    # the committed state, whatever anyone is editing in this checkout right now
    for lesson in LESSONS:
        for kind in ("solutions", "lessons"):
            path = f"{kind}/{lesson}/{lesson}.ipynb"
            shown = subprocess.run(["git", "-C", str(ROOT), "show", f"HEAD:{path}"], capture_output=True, text=True)
            if shown.returncode == 0:
                (course / path).write_text(shown.stdout)
    _git(course, "init", "-q")
    if origin:
        _git(course, "remote", "add", "origin", origin)
    return course


def _release(course: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(course)}
    env.pop("CNN_COURSE_ROOT", None)
    return subprocess.run([sys.executable, "-m", "autograder", "release", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=600)


def _linked_repositories(course: pathlib.Path) -> set[str]:
    """Every owner/name that a Colab, Binder, GitHub or clone link in the course's files names."""
    pattern = re.compile(r"(?:colab\.research\.google\.com/github/|mybinder\.org/v2/gh/|github\.com/)"
                         r"([\w.-]+/[\w.-]+?)(?:\.git)?(?=[/\"?)\s]|$)")
    found = set()
    for path in [course / "README.md", *course.glob("solutions/*/*.ipynb"), *course.glob("lessons/*/*.ipynb")]:
        found |= set(pattern.findall(path.read_text(encoding="utf-8")))
    return found - {"assets/colab-badge.svg"}


def _branches(course: pathlib.Path) -> set[str]:
    text = "".join(p.read_text() for p in [course / "README.md", *course.glob("lessons/*/*.ipynb")])
    return set(re.findall(r"/blob/([\w.-]+)/lessons/", text)) | set(re.findall(r'\\"--branch\\", \\"([\w.-]+)\\"', text))


@pytest.mark.slow
def test_a_fork_retargets_every_link_from_its_ssh_origin(tmp_path):
    course = _course(tmp_path, "git@github.com:someone/their-fork.git")
    others = _linked_repositories(course) - {UPSTREAM}  # the README cites other projects (bubblewrap)
    assert UPSTREAM in _linked_repositories(course) and all("cnn" not in x for x in others)
    result = _release(course)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "someone/their-fork" in result.stdout and "from the origin remote" in result.stdout
    assert links.recorded((course / "cnn_course" / "links.py").read_text()) == ("someone/their-fork", links.BRANCH)
    assert _linked_repositories(course) == {"someone/their-fork"} | others
    for lesson in LESSONS:  # the released notebook keeps nbgrader's checksums valid: the header is a locked cell
        nb = nbformat.read(course / "lessons" / lesson / f"{lesson}.ipynb", as_version=4)
        header = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "colab_badge")
        assert f"colab.research.google.com/github/someone/their-fork/blob/{links.BRANCH}/lessons/{lesson}/" in header.source
    # told a repository and a branch, a release rewrites again, and --check holds
    result = _release(course, "--repository", "teacher/cnn-2027", "--branch", "spring")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _linked_repositories(course) == {"teacher/cnn-2027"} | others and _branches(course) == {"spring"}
    check = _release(course, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "note: origin is someone/their-fork" in check.stdout  # said, not failed


@pytest.mark.slow
def test_check_holds_in_a_clone_whose_origin_is_another_github_repository(tmp_path):
    """A CI runner's clone (here a GitHub origin of another name) passes while its files agree."""
    course = _course(tmp_path, "https://github.com/ci-runner/mirror.git")
    check = _release(course, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"links name {UPSTREAM}" in check.stdout and "note: origin is ci-runner/mirror" in check.stdout
    assert links.recorded((course / "cnn_course" / "links.py").read_text()) == (UPSTREAM, links.BRANCH)


def test_link_problems_finds_a_hand_edited_header_and_a_stale_table(tmp_path):
    from autograder.release import link_problems

    course = tmp_path / "course"  # no cnn_course/ of its own: the imported links.py is the reference
    shutil.copytree(ROOT / "solutions" / "02_convolution", course / "solutions" / "02_convolution")
    shutil.copy2(ROOT / "README.md", course / "README.md")
    assert link_problems(course) == []
    assert link_problems(course, "someone/their-fork") == [
        f"cnn_course/links.py names {UPSTREAM} (branch {links.BRANCH}), not someone/their-fork (branch {links.BRANCH})"]
    path = course / "solutions" / "02_convolution" / "02_convolution.ipynb"
    path.write_text(path.read_text().replace(f"/github/{UPSTREAM}/", "/github/elsewhere/copy/", 1))
    readme = course / "README.md"
    readme.write_text(readme.read_text().replace(f"/gh/{UPSTREAM}/", "/gh/elsewhere/copy/", 1))
    assert link_problems(course) == [
        "solutions/02_convolution/02_convolution.ipynb: Colab/Binder header does not match cnn_course/links.py",
        "README.md: the lessons table does not match cnn_course/links.py"]


def test_release_keep_links_ignores_origin(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(ROOT / "cnn_course", course / "cnn_course", ignore=shutil.ignore_patterns("__pycache__"))
    _git(course, "init", "-q")
    _git(course, "remote", "add", "origin", "https://github.com/contributor/cnn-course.git")
    from autograder.release import link_target

    with pytest.MonkeyPatch.context() as mp:  # link_target reads the copy's links.py into the module
        mp.setattr(links, "REPOSITORY", links.REPOSITORY)
        mp.setattr(links, "BRANCH", links.BRANCH)
        assert link_target(course)[:2] == ("contributor/cnn-course", links.BRANCH)
        assert link_target(course, keep=True) == (UPSTREAM, links.BRANCH, "cnn_course/links.py")
        assert link_target(course, "a/b", "c")[:2] == ("a/b", "c")
        (course / "cnn_course" / "links.py").write_text(links.with_settings(
            (course / "cnn_course" / "links.py").read_text(), "recorded/elsewhere", "term"))
        assert link_target(course, keep=True)[:2] == ("recorded/elsewhere", "term")  # the course's file, not the package's
