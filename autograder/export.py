"""Step 5: export. The gradebook as a file an LMS imports: Canvas, Moodle, or a plain table.

``python -m autograder export OUT_OR_DB_URL --format canvas|moodle|csv --to FILE``
reads nbgrader's gradebook (``OUT/gradebook.db`` of ``grade``, or the SQLAlchemy URL
given to ``grade --db``), so scores changed by hand in formgrader are exported too.
One row per student, one column per lesson (``--lessons`` for some; lessons worth no
points, such as ``00_start_here``, are left out). A lesson a student has no grade for
is left blank, which both LMSs read as "no grade to import", or 0 with ``--missing-as-zero``.

- ``canvas``: Canvas's gradebook CSV (Grades > Import): ``Student, ID, SIS User ID,
  SIS Login ID, Section``, then one column per assignment, a ``Points Possible`` row
  under the header as in Canvas's own export. An assignment column named
  ``Name (1234)`` updates Canvas assignment 1234; a name without an id creates a new
  assignment.
- ``moodle``: Moodle's CSV grade import (Grades > Import > CSV file): one column that
  identifies the user (mapped on import from "Map from" to ``username``, ``useridnumber``
  or ``useremail``) and one column per grade item.
- ``csv``: ``student_id`` and one column per lesson id.

``--roster`` takes the LMS's own gradebook export (Canvas: Grades > Export; Moodle:
Grades > Export > Plain text file). Its identity columns are copied, so the import
matches students by the LMS's ids, and its assignment columns are reused when their
names match a lesson (``02_convolution``, ``Convolution``, ``02 Convolution``).
A grader student id matches a roster row when it equals (ignoring case, spaces and
punctuation) one of the row's ids or logins, the name (``smithjohn`` for Canvas's
``Smith, John``, ``ada-lovelace`` for Moodle's Ada Lovelace, as ``collect-zip`` names
them), or the name and LMS id (``smithjohn_12345``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import unicodedata

from cnn_course import course

from .config import COURSE_ID, ensure_tools_on_path

CANVAS_IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_POINTS = "    Points Possible"  # the first cell of the row under the header in Canvas's export
MOODLE_IDENTITY = ["First name", "Last name", "ID number", "Username", "Email address"]
FORMATS = ("canvas", "moodle", "csv")


@dataclasses.dataclass
class Gradebook:
    """Scores read from nbgrader's gradebook: ``score[(student, lesson)]`` when graded."""
    lessons: list[tuple[str, float]]  # (lesson id, max score), in course order
    students: list[str]
    score: dict[tuple[str, str], float]


def read_gradebook(db_url: str, lessons: list[str] | None = None) -> Gradebook:
    from nbgrader.api import Gradebook as NbGradebook

    ensure_tools_on_path()  # nbgrader runs alembic by name
    order = {x.id: i for i, x in enumerate(course.ALL)}
    with NbGradebook(db_url, COURSE_ID) as gb:
        assignments = {a.name: a for a in gb.assignments}
        unknown = sorted(set(lessons or []) - set(assignments))
        if unknown:
            raise ValueError(f"not in the gradebook: {', '.join(unknown)} (it has {', '.join(sorted(assignments)) or 'none'})")
        chosen = [a for name, a in assignments.items() if (name in lessons if lessons else a.max_score > 0)]
        chosen.sort(key=lambda a: (order.get(a.name, len(order)), a.name))
        score = {(s.student_id, a.name): float(s.score) for a in chosen for s in a.submissions}
        return Gradebook([(a.name, float(a.max_score)) for a in chosen], sorted(s.id for s in gb.students), score)


def _key(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9@_]", "", ascii_text.lower())


def _number(x: float) -> str:
    return f"{round(x, 2):g}"


def read_roster(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """Header and student rows of an LMS export (Canvas's "Points Possible" and muted-row lines dropped)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    rows = [r for r in reader if r and not (next(iter(r.values())) or "").startswith(" ")]
    return list(reader.fieldnames or []), rows


def _row_keys(row: dict[str, str], lms: str) -> dict[str, str]:
    """The keys a grader's student id may match in this roster row, each with the column(s) it comes from."""
    if lms == "canvas":
        columns, name, name_column = ["ID", "SIS User ID", "SIS Login ID"], row.get("Student", ""), "Student"
    else:
        columns = ["ID number", "Username", "Email address"]
        name, name_column = f"{row.get('First name', '')} {row.get('Last name', '')}", "First name + Last name"
    keys = {_key(row.get(c, "")): c for c in reversed(columns) if _key(row.get(c, ""))}  # the first column wins
    if _key(name):
        keys.setdefault(_key(name), name_column)
    if row.get("ID"):
        keys.setdefault(f"{_key(name)}_{_key(row['ID'])}", f"{name_column} + ID")
    return keys


def roster_matches(students: list[str], lms: str, rows: list[dict[str, str]]) -> dict[str, tuple[dict, str]]:
    """Each grader student id the roster knows: its roster row and the column it matched on."""
    index: dict[str, tuple[dict, str]] = {}
    for row in rows:
        for key, column in _row_keys(row, lms).items():
            index.setdefault(key, (row, column))
    return {s: index[_key(s)] for s in students if _key(s) in index}


def _lesson_column(lesson: str, header: list[str], lms: str) -> str:
    """The roster's column for ``lesson`` when one is named after it, else a name for a new column."""
    title = next((x.title for x in course.ALL if x.id == lesson), lesson)
    wanted = {_key(lesson), _key(title), _key(f"{lesson[:2]} {title}")}
    for column in header:
        name = re.sub(r"\s*\((?:\d+|Real|Percentage|Letter)\)$", "", column)
        name = re.sub(r"^[^:]+:\s*", "", name) if lms == "moodle" else name
        if _key(name) in wanted:
            return column
    return f"{lesson[:2]} {title}"


def table(book: Gradebook, lms: str, roster: str | None = None,
          missing_as_zero: bool = False) -> tuple[list[list[str]], list[str]]:
    """The rows of the file (header first) and the grader's students the roster does not know."""
    def cell(student: str, lesson: str) -> str:
        value = book.score.get((student, lesson))
        return _number(value) if value is not None else ("0" if missing_as_zero else "")

    if lms == "csv":
        return [["student_id", *[x for x, _ in book.lessons]],
                *[[s, *[cell(s, x) for x, _ in book.lessons]] for s in book.students]], []
    identity = CANVAS_IDENTITY if lms == "canvas" else MOODLE_IDENTITY
    if roster is None:
        header = []
        people = {s: ({"Student": s, "SIS Login ID": s} if lms == "canvas" else {"Username": s}) for s in book.students}
        if lms == "moodle":
            identity = ["Username"]
    else:
        header, rows = read_roster(roster)
        if lms == "moodle":
            identity = [c for c in identity if c in header]
        people = {s: row for s, (row, _) in roster_matches(book.students, lms, rows).items()}
    columns = [_lesson_column(x, header, lms) for x, _ in book.lessons]
    out = [[*identity, *columns]]
    if lms == "canvas":
        out.append([CANVAS_POINTS, *[""] * (len(identity) - 1), *[_number(m) for _, m in book.lessons]])
    for student in book.students:
        if student in people:
            out.append([people[student].get(c, "") for c in identity] + [cell(student, x) for x, _ in book.lessons])
    return out, [s for s in book.students if s not in people]


def write(rows: list[list[str]]) -> str:
    """CSV text as both LMSs read it: comma-separated, quoted where needed, CRLF line ends."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()
