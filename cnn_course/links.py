"""Where the course lives online: every Colab, Binder and GitHub link is built from here.

The public repository is set in ONE place, :data:`REPOSITORY` and :data:`BRANCH`.
To publish the course elsewhere (a fork, another branch), change these two lines, then
regenerate everything that quotes them:

    python tools/normalize_notebooks.py solutions/*/*.ipynb   # lesson headers (badges, Colab setup cell)
    python -m autograder release                              # lessons/ from solutions/
    python tools/lessons_table.py                             # the README's lessons table

``tests/test_hygiene.py`` and ``tests/test_links.py`` fail while any of them is stale.
"""

from __future__ import annotations

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
