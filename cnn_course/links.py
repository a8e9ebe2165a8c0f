"""Where the course lives online: every Colab, Binder and GitHub link is built from here.

The public repository is recorded in ONE place, :data:`REPOSITORY` and :data:`BRANCH`
below, and ``python -m autograder release`` keeps them in step with the checkout: it
takes the ``owner/name`` of the ``origin`` remote when that is a GitHub URL (https or
ssh), or ``--repository OWNER/NAME [--branch B]``, rewrites these two lines, and
regenerates everything that quotes them (the lesson headers in ``solutions/``,
``lessons/``, the README's lessons table). ``release --check`` fails while any of them
disagrees with these two lines; it never looks at where the checkout was cloned from.
"""

from __future__ import annotations

import pathlib
import re
import subprocess

REPOSITORY = "cnn-course/cnn-course"
"""``owner/name`` of the public repository on GitHub."""

BRANCH = "main"
"""The branch learners open (Colab and Binder read the notebooks from it)."""

COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"


def clone_url(repository: str | None = None) -> str:
    """What ``git clone`` takes."""
    return f"https://github.com/{repository or REPOSITORY}.git"


def github_url(path: str = "", repository: str | None = None, branch: str | None = None) -> str:
    """The repository's page, or the page of ``path`` inside it on ``branch``."""
    base = f"https://github.com/{repository or REPOSITORY}"
    return f"{base}/blob/{branch or BRANCH}/{path}" if path else base


def raw_url(path: str, repository: str | None = None, branch: str | None = None) -> str:
    """The file at ``path`` (relative to the repository root) as GitHub serves it: an image that shows
    on GitHub, in Colab and in JupyterLab alike."""
    return f"https://raw.githubusercontent.com/{repository or REPOSITORY}/{branch or BRANCH}/{path}"


def lesson_path(lesson: str) -> str:
    """The student notebook of ``lesson``, relative to the repository root."""
    return f"lessons/{lesson}/{lesson}.ipynb"


def colab_url(lesson: str, repository: str | None = None, branch: str | None = None) -> str:
    """Opens the student notebook of ``lesson`` in Google Colab, straight from GitHub."""
    return (f"https://colab.research.google.com/github/{repository or REPOSITORY}/blob/{branch or BRANCH}/"
            f"{lesson_path(lesson)}")


def binder_url(lesson: str | None = None, repository: str | None = None, branch: str | None = None) -> str:
    """Builds the repository on mybinder.org and opens JupyterLab on ``lessons/`` (or on one lesson)."""
    target = lesson_path(lesson) if lesson else "lessons"
    return f"https://mybinder.org/v2/gh/{repository or REPOSITORY}/{branch or BRANCH}?urlpath=lab/tree/{target}"


def colab_badge(lesson: str) -> str:
    """Markdown for an "Open in Colab" badge."""
    return f"[![Open in Colab]({COLAB_BADGE})]({colab_url(lesson)})"


def binder_badge(lesson: str | None = None) -> str:
    """Markdown for a "launch Binder" badge."""
    return f"[![Launch on Binder]({BINDER_BADGE})]({binder_url(lesson)})"


GITHUB_REMOTE = re.compile(r"^(?:https?://(?:[^@/]+@)?github\.com/|ssh://git@github\.com(?::\d+)?/|git@github\.com:)"
                           r"(?P<owner>[A-Za-z0-9-]+)/(?P<name>[A-Za-z0-9._-]+?)(?:\.git)?/?$")
SETTING = re.compile(r'^(?P<key>REPOSITORY|BRANCH) = "(?P<value>[^"]*)"$', re.MULTILINE)


def github_repository(url: str) -> str | None:
    """``owner/name`` of a GitHub remote URL (https, ``git@github.com:`` or ``ssh://``), else None."""
    match = GITHUB_REMOTE.match(url.strip())
    return f"{match['owner']}/{match['name']}" if match else None


def _git(root: pathlib.Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def origin(root: pathlib.Path) -> tuple[str | None, str | None]:
    """``(owner/name, default branch)`` of the checkout's ``origin`` when it is on GitHub.

    The branch is origin's default branch (``origin/HEAD``, set by ``git clone``), or None
    when git does not know it; the repository is None when there is no origin or it is
    not a GitHub URL (a CI runner's mirror, a local path).
    """
    url = _git(root, "remote", "get-url", "origin")
    repository = github_repository(url) if url else None
    if repository is None:
        return None, None
    head = _git(root, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD")
    return repository, head.removeprefix("refs/remotes/origin/") if head else None


def recorded(text: str) -> tuple[str, str]:
    """``(REPOSITORY, BRANCH)`` as written in the source text of this module."""
    found = {m["key"]: m["value"] for m in SETTING.finditer(text)}
    return found["REPOSITORY"], found["BRANCH"]


def with_settings(text: str, repository: str, branch: str) -> str:
    """The source text of this module with :data:`REPOSITORY` and :data:`BRANCH` replaced."""
    if not re.fullmatch(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+", repository):
        raise ValueError(f"not a GitHub owner/name: {repository!r}")
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", branch) or ".." in branch:
        raise ValueError(f"not a branch name: {branch!r}")
    values = {"REPOSITORY": repository, "BRANCH": branch}
    return SETTING.sub(lambda m: f'{m["key"]} = "{values[m["key"]]}"', text)
