"""Write the README's lessons table (Colab and Binder badges per lesson) from cnn_course/course.py.

    python tools/lessons_table.py          # rewrite the table between the README's markers
    python tools/lessons_table.py --check  # CI: exit 1 if the table is stale

The table sits between ``<!-- lessons-table -->`` and ``<!-- /lessons-table -->`` in
README.md; nothing else in the README is touched. Every link is built from
``cnn_course/links.py`` (the one place that names the repository).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cnn_course import course, links  # noqa: E402

BEGIN, END = "<!-- lessons-table -->", "<!-- /lessons-table -->"


def table() -> str:
    return (f"{links.binder_badge()} opens JupyterLab on `lessons/` with everything installed; "
            "each row's badges open one lesson.\n\n" + course.readme_markdown())


def with_table(readme: str) -> str:
    """``readme`` with the text between the markers replaced by the current table."""
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise ValueError(f"README.md needs exactly one {BEGIN} ... {END} pair")
    head, rest = readme.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=pathlib.Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if the table is stale")
    args = parser.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    try:
        new = with_table(text)
    except ValueError as exc:
        print(f"{args.readme}: {exc}", file=sys.stderr)
        return 1
    if new == text:
        return 0
    if args.check:
        print(f"{args.readme}: the lessons table is stale; run python tools/lessons_table.py", file=sys.stderr)
        return 1
    args.readme.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
