"""Step 3: grade. Run nbgrader's autograde on every collected submission, into one gradebook.

nbgrader does the grading (restores locked and test cells, runs the notebook in a
fresh kernel, scores the test cells, stores everything in the gradebook); this
module feeds it one submission at a time in a scratch course directory, reads the
scores back, and turns whatever went wrong into a reason a person can act on.
Worker processes each build nbgrader's API once and grade many submissions, so a
submission costs its kernel's start-up and nothing more; a worker that dies takes
down only the submission it was grading.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import pathlib
import shutil

from tqdm.auto import tqdm

from .collect import Submission
from .config import CELL_TIMEOUT_S, COURSE_ID, course_config, ensure_tools_on_path

_worker: dict = {}


def prepare_workspace(root: pathlib.Path, work: pathlib.Path, lessons: list[str], db_url: str) -> dict[str, float]:
    """Copy the lessons' source into ``work/source`` and register them in the gradebook.

    Returns each lesson's maximum score.
    """
    from nbgrader.api import Gradebook

    for lesson in lessons:
        target = work / "source" / lesson
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(root / "solutions" / lesson, target,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    api = _make_api(work, db_url)
    for lesson in lessons:
        result = api.generate_assignment(lesson)
        if not result["success"]:
            raise RuntimeError(f"nbgrader could not register {lesson}:\n{result.get('error', '')}")
    with Gradebook(db_url, COURSE_ID) as gb:
        return {lesson: float(gb.find_assignment(lesson).max_score) for lesson in lessons}


def _make_api(work: pathlib.Path, db_url: str):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    ensure_tools_on_path()
    config = course_config(work, source="source", release="release", db_url=db_url)
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def _init_worker(work: pathlib.Path, db_url: str) -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore", module="nbgrader")  # SQLAlchemy chatter from nbgrader's own queries
    warnings.filterwarnings("ignore", message=".*not in session.*")
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    _worker.update(api=_make_api(work, db_url), work=work, db_url=db_url)


def _failed_cells(db_url: str, lesson: str, student_id: str) -> tuple[float, float, list[str]]:
    from nbgrader.api import Gradebook

    with Gradebook(db_url, COURSE_ID) as gb:
        submission = gb.find_submission(lesson, student_id)
        failed = [g.name for nb in submission.notebooks for g in nb.grades
                  if g.max_score > 0 and (g.score or 0) < g.max_score]
        return float(submission.score), float(submission.max_score), failed


def _timeouts(autograded: pathlib.Path) -> list[str]:
    import nbformat

    if not autograded.is_file():
        return []
    nb = nbformat.read(autograded, as_version=4)
    hung = []
    for i, cell in enumerate(nb.cells):
        if any(o.get("ename") == "CellTimeoutError" for o in cell.get("outputs", [])):
            hung.append(cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {i + 1}")
    return hung


def explain_failure(log: str) -> str:
    """A plain reason from nbgrader's log of a failed autograde."""
    if "DeadKernelError" in log or "Kernel died" in log or "kernel died" in log:
        return "the kernel died while running the notebook (os._exit, a crash, or the memory limit)"
    if "CellTimeoutError" in log or "Timeout waiting" in log:
        return f"a cell ran longer than {CELL_TIMEOUT_S} s and the kernel did not respond to an interrupt"
    if "MissingEntry" in log or "No notebooks found" in log:
        return "nbgrader did not recognise the notebook (are the test cells' ids intact?)"
    for line in reversed(log.strip().splitlines()):
        if "Error" in line or "error" in line:
            return f"nbgrader could not grade it: {line.strip()[:300]}"
    return "nbgrader could not grade it (see the grader log)"


def grade_one(sub: Submission) -> Submission:
    """Autograde one collected submission in this worker; fill in score, status, reason, feedback."""
    api, work, db_url = _worker["api"], _worker["work"], _worker["db_url"]
    sub = dataclasses.replace(sub)
    dest = work / "submitted" / sub.student_id / sub.lesson
    for stale in (dest, work / "autograded" / sub.student_id / sub.lesson, work / "feedback" / sub.student_id / sub.lesson):
        if stale.exists():
            shutil.rmtree(stale)
    shutil.copytree(sub.folder, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    result = api.autograde(sub.lesson, sub.student_id)
    if not result["success"]:
        sub.status, sub.reason = "failed", explain_failure(result.get("log", "") + result.get("error", ""))
        return sub
    sub.score, sub.max_score, failed = _failed_cells(db_url, sub.lesson, sub.student_id)
    sub.status = "graded"
    notes = []
    hung = _timeouts(work / "autograded" / sub.student_id / sub.lesson / f"{sub.lesson}.ipynb")
    if hung:
        notes.append(f"timed out after {CELL_TIMEOUT_S} s in {', '.join(hung)}")
    if failed:
        notes.append(f"tests failed: {', '.join(failed)}")
    sub.reason = "; ".join(notes)
    feedback = api.generate_feedback(sub.lesson, sub.student_id)
    html = work / "feedback" / sub.student_id / sub.lesson / f"{sub.lesson}.html"
    if feedback["success"] and html.is_file():
        sub.feedback = html
    return sub


def grade_all(submissions: list[Submission], work: pathlib.Path, db_url: str, jobs: int = 1,
              progress: bool = True) -> list[Submission]:
    """Grade every ``pending`` submission with ``jobs`` worker processes; others pass through."""
    pending = [s for s in submissions if s.status == "pending"]
    done: dict[int, Submission] = {}
    bar = tqdm(total=len(pending), desc="grading", unit="notebook", disable=not progress)
    queue = list(range(len(pending)))
    solo = False  # after a worker crash, retry the unfinished ones one at a time to find the culprit
    while queue:
        batch, queue = (queue[:1], queue[1:]) if solo else (queue, [])
        with cf.ProcessPoolExecutor(max_workers=1 if solo else jobs, initializer=_init_worker,
                                    initargs=(work, db_url)) as pool:
            futures = {pool.submit(grade_one, pending[i]): i for i in batch}
            crashed = []
            for future in cf.as_completed(futures):
                i = futures[future]
                try:
                    done[i] = future.result()
                except cf.process.BrokenProcessPool:
                    crashed.append(i)
                    continue
                except Exception as exc:  # a bug of ours or nbgrader's: report it for this student only
                    done[i] = dataclasses.replace(pending[i], status="failed",
                                                  reason=f"grader error: {type(exc).__name__}: {exc}"[:400])
                bar.update()
        if crashed and solo:
            i = crashed[0]
            done[i] = dataclasses.replace(pending[i], status="failed", reason="the grading process crashed on this notebook")
            bar.update()
        elif crashed:
            queue, solo = sorted(crashed) + queue, True
    bar.close()
    by_key = {(s.student_id, s.lesson): done[i] for i, s in enumerate(pending)}
    return [by_key.get((s.student_id, s.lesson), s) for s in submissions]
