"""Step 4: report. ``OUT/grades.csv`` and ``OUT/feedback/<student>/<lesson>/<lesson>.html``."""

from __future__ import annotations

import csv
import pathlib
import shutil

from .collect import Submission

COLUMNS = ["student_id", "lesson", "score", "max_score", "status", "reason"]


def _points(x: float) -> str:
    return f"{x:g}"


def write_report(submissions: list[Submission], out: pathlib.Path, max_scores: dict[str, float]) -> pathlib.Path:
    """Write the grades table (one row per student and lesson) and copy the feedback files."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "grades.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for s in sorted(submissions, key=lambda s: (s.student_id, s.lesson)):
            max_score = s.max_score or max_scores.get(s.lesson, 0.0)
            score = s.score if s.status == "graded" else 0.0
            writer.writerow([s.student_id, s.lesson, _points(score), _points(max_score), s.status, s.reason])
            if s.feedback is not None:
                target = out / "feedback" / s.student_id / s.lesson / f"{s.lesson}.html"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(s.feedback, target)
    return path
