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
import contextlib
import dataclasses
import pathlib
import shutil

from tqdm.auto import tqdm

from . import limits, repair
from .collect import Submission
from .config import CELL_TIMEOUT_S, COURSE_ID, KERNEL_LIMITS, PRELOAD, course_config, ensure_tools_on_path
from .verify import verify

_worker: dict = {}


def prepare_workspace(root: pathlib.Path, work: pathlib.Path, lessons: list[str], db_url: str) -> dict[str, float]:
    """Copy the lessons' source into ``work/source``, fit their cells' time limits (:mod:`autograder.limits`),
    and register them in the gradebook.

    Returns each lesson's maximum score.
    """
    from nbgrader.api import Gradebook

    for lesson in lessons:
        target = work / "source" / lesson
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(root / "solutions" / lesson, target,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    if limits.FIT:  # per-cell time limits from one run of each lesson's notebook on this machine
        limits.measure_lessons(work / "source", lessons, work / "cell_limits.json")
    register_lessons(work, lessons, db_url)
    with Gradebook(db_url, COURSE_ID) as gb:
        return {lesson: float(gb.find_assignment(lesson).max_score) for lesson in lessons}


def register_lessons(work: pathlib.Path, lessons: list[str], db_url: str) -> None:
    """Write each lesson's release into ``work/release`` and register it in the gradebook, unless it is there already.

    nbgrader's generate_assignment re-registers a lesson that has no submissions yet by deleting
    its notebook and creating it again; in a gradebook shared by several graders (``--shard``)
    that pulled the notebook from under a grader that had just started autograding, and its
    student was left with 0 points and no reason. So the release is generated against a private
    gradebook first, and the shared one is written only where its registration differs from
    that one, by one grader at a time.
    """
    ensure_tools_on_path()  # nbgrader stamps a new gradebook by running `alembic`
    with _one_grader_at_a_time(db_url):  # also while a new shared gradebook's tables are created
        private_url = _private_gradebook(work / "registration.db", db_url)
        private = _make_api(work, private_url)
        for lesson in lessons:
            _generate(private, lesson)
        shared = _make_api(work, db_url)
        for lesson in lessons:
            if registration(db_url, lesson) != registration(private_url, lesson):
                _generate(shared, lesson)


def _private_gradebook(path: pathlib.Path, db_url: str) -> str:
    """A new SQLite gradebook stamped with the schema version of the one at ``db_url``: nbgrader stamps a
    new gradebook by running alembic in a subprocess (3 s), and a private one is made every run."""
    import sqlite3

    from nbgrader.api import Gradebook
    from sqlalchemy import text

    with Gradebook(db_url, COURSE_ID) as gb:  # a new shared gradebook is stamped here, once, by nbgrader
        version = gb.db.execute(text("select version_num from alembic_version")).scalar_one()
    path.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("create table alembic_version (version_num varchar(32) not null)")
        db.execute("insert into alembic_version (version_num) values (?)", (version,))
    return f"sqlite:///{path}"


def _generate(api, lesson: str) -> None:
    result = api.generate_assignment(lesson)
    if not result["success"]:
        raise RuntimeError(f"nbgrader could not register {lesson}:\n{result.get('log', '')}{result.get('error', '')}")


def registration(db_url: str, lesson: str) -> list | None:
    """What the gradebook holds of a lesson's notebooks and cells (None where it does not know the lesson)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, COURSE_ID) as gb:
        try:
            assignment = gb.find_assignment(lesson)
        except MissingEntry:
            return None
        return sorted((nb.name, nb.kernelspec,
                       sorted((c.name, c.cell_type, c.locked, c.source, c.checksum) for c in nb.source_cells),
                       sorted((c.name, c.max_score, c.cell_type) for c in nb.grade_cells),
                       sorted((c.name, c.max_score, c.cell_type) for c in nb.task_cells),
                       sorted(c.name for c in nb.solution_cells)) for nb in assignment.notebooks)


@contextlib.contextmanager
def _one_grader_at_a_time(db_url: str):
    """Let one grader at a time register lessons in a gradebook others may share: PostgreSQL's advisory
    lock for graders on several machines, an flock on a SQLite file for graders on one (SQLite's own
    locks are fcntl locks, which an flock does not touch)."""
    import fcntl

    import sqlalchemy

    engine = sqlalchemy.create_engine(db_url)
    try:
        if engine.dialect.name == "postgresql":
            with engine.connect() as db:
                db.execute(sqlalchemy.text("select pg_advisory_lock(:key)"), {"key": REGISTRATION_LOCK})
                try:
                    yield
                finally:
                    db.execute(sqlalchemy.text("select pg_advisory_unlock(:key)"), {"key": REGISTRATION_LOCK})
        elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            engine.connect().close()  # creates the file
            with open(engine.url.database, "rb") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                yield
        else:
            yield
    finally:
        engine.dispose()


REGISTRATION_LOCK = 0x636E6E  # "cnn": any fixed number all graders of this course agree on


def _make_api(work: pathlib.Path, db_url: str, hide: list[str] | None = None):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    ensure_tools_on_path()
    config = course_config(work, source="source", release="release", db_url=db_url)
    config.ResilientExecute.hide = list(config.ResilientExecute.hide) + list(hide or [])
    config.ResilientExecute.cell_limits = limits.load(work / "cell_limits.json")
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def _use_threads(threads: int) -> None:
    """Size this worker's own thread pools (the tests it verifies run here) to its share of the cores,
    whatever the instructor's environment says; the sandboxed processes it starts use one thread each."""
    import os
    import sys

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)  # for libraries imported from now on
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def _init_worker(work: pathlib.Path, db_url: str, hide: list[str] | None = None, verify: bool = True,
                 preload: list[str] | None = None, threads: int = 1) -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore", module="nbgrader")  # SQLAlchemy chatter from nbgrader's own queries
    warnings.filterwarnings("ignore", message=".*not in session.*")
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    from .config import hidden_paths
    from .isolation import start_zygote

    hide = hidden_paths(work, *(hide or []))
    # Every process that runs student code is forked by this worker's zygote, which has already
    # imported what the lessons import (nothing when preloading is off).
    start_zygote(preload or [], hide)
    _worker.update(api=_make_api(work, db_url, hide), work=work, db_url=db_url, hide=hide, verify=verify)
    _use_threads(threads)


def _failed_cells(db_url: str, lesson: str, student_id: str) -> tuple[float, float, list[str], list[str]]:
    """Score, maximum, the graded cells short of full marks, and the graded cells with no grade at all
    (nbgrader gives every graded cell a grade when it creates the submission: one missing means the
    lesson was registered again while this submission was graded)."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url, COURSE_ID) as gb:
        submission = gb.find_submission(lesson, student_id)
        grades = [g for nb in submission.notebooks for g in nb.grades]
        failed = [g.name for g in grades if g.max_score > 0 and (g.score or 0) < g.max_score]
        missing = sorted({c.name for nb in submission.assignment.notebooks for c in nb.grade_cells} - {g.name for g in grades})
        return float(submission.score), float(submission.max_score), failed, missing


def _grade_id(cell, index: int) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index + 1}"


FAULTS = ("KernelDied", "CellTimeout", "SubmissionTimeout", "MemoryError")


def fault_reasons(autograded: pathlib.Path) -> list[str]:
    """Plain reasons for the faults autograder.execute recorded in the autograded notebook."""
    import nbformat

    if not autograded.is_file():
        return []
    nb = nbformat.read(autograded, as_version=4)
    reasons = []
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            ename, evalue = output.get("ename", ""), output.get("evalue", "")
            if ename in ("KernelDied", "CellTimeout", "SubmissionTimeout"):
                reasons.append(evalue.split(";")[0])
            elif ename == "MemoryError" or "MemoryError" in evalue or "Unable to allocate" in evalue:
                reasons.append(f"hit the memory limit of {KERNEL_LIMITS['memory_mib']} MiB in {_grade_id(cell, i)}")
    return list(dict.fromkeys(reasons))


def restore_locked_cells(submitted: pathlib.Path, released: pathlib.Path, source: pathlib.Path) -> list[str]:
    """Put back test and setup cells the student deleted, altered or retyped (:func:`autograder.repair.restore_locked`).

    Returns reasons for the report ("test cells deleted and restored: ...", "test cells were altered and restored: ...").
    """
    import nbformat

    nb, _ = repair.read(submitted)
    notes = repair.restore_locked(nb, nbformat.read(released, as_version=4), nbformat.read(source, as_version=4))
    if notes:
        repair.write(nb, submitted)
    return notes


def _apply_verification(db_url: str, sub: Submission, verdicts: dict) -> list[str]:
    """Lower the gradebook score of every test cell that failed verification (manual_score, so the
    formgrader shows it); undo our own earlier lowering of cells that now pass. Returns the failures."""
    from nbgrader.api import Gradebook

    failed = []
    marker = "[autograder verification] "
    with Gradebook(db_url, COURSE_ID) as gb:
        submission = gb.find_submission_notebook(sub.lesson, sub.lesson, sub.student_id)
        comments = {c.name: c for c in submission.comments}
        notes: dict[str, list[str]] = {}
        for grade in submission.grades:
            verdict = verdicts.get(grade.name)
            if verdict is not None and not verdict.passed and (grade.auto_score or 0) > 0:
                grade.manual_score = 0.0
                grade.needs_manual_grade = False
                failed.append(f"{grade.name} ({verdict.message})")
                notes.setdefault(_function_of(grade.name, comments), []).append(f"{grade.name}: {verdict.message}")
            elif grade.manual_score is not None and (
                    getattr(comments.get(_function_of(grade.name, comments)), "manual_comment", None) or ""
            ).startswith(marker):
                grade.manual_score = None
                grade.needs_manual_grade = False
            elif verdict is not None:
                grade.needs_manual_grade = False
        for name, comment in comments.items():
            if name in notes:
                comment.manual_comment = marker + "tests failed outside the notebook kernel: " + "; ".join(notes[name])
            elif (comment.manual_comment or "").startswith(marker):
                comment.manual_comment = None
        gb.db.commit()
    return failed


def _function_of(test_id: str, comments: dict) -> str:
    names = [n for n in comments if test_id == f"test_{n}" or test_id.startswith(f"test_{n}_")]
    return max(names, key=len) if names else next(iter(comments), "")


def _note_in_notebook(autograded: pathlib.Path, verdicts: dict, failed_ids: set[str]) -> None:
    """Add the verification failure to the test cell's outputs, so the feedback shows it."""
    import os as _os

    import nbformat

    nb = nbformat.read(autograded, as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in failed_ids:
            message = f"tests failed outside the notebook kernel: {verdicts[gid].message}"
            cell.setdefault("outputs", []).append(nbformat.v4.new_output(
                "error", ename="VerificationFailed", evalue=message, traceback=[f"VerificationFailed: {message}"]))
    _os.chmod(autograded, 0o644)
    nbformat.write(nb, autograded)
    _os.chmod(autograded, 0o444)


def _passed_cells(db_url: str, lesson: str, student_id: str) -> list[str]:
    from nbgrader.api import Gradebook

    with Gradebook(db_url, COURSE_ID) as gb:
        submission = gb.find_submission(lesson, student_id)
        return [g.name for nb in submission.notebooks for g in nb.grades if g.max_score > 0 and (g.auto_score or 0) > 0]


def explain_failure(log: str) -> str:
    """A plain reason from nbgrader's log of a failed autograde."""
    if "DeadKernelError" in log or "Kernel died" in log or "kernel died" in log:
        return "the kernel died while running the notebook (os._exit, a crash, or the memory limit)"
    if "CellTimeoutError" in log or "Timeout waiting" in log:
        return f"a cell ran longer than {CELL_TIMEOUT_S} s and the kernel did not respond to an interrupt"
    if "IntegrityError" in log or "database is locked" in log:
        return "the gradebook was busy (two graders wrote at once); grade again: re-running is safe"
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
    notes = repair.repair_submission(dest / sub.notebook.name, sub.lesson,  # one <lesson>.ipynb, repaired
                                     work / "release" / sub.lesson / f"{sub.lesson}.ipynb",
                                     work / "source" / sub.lesson / f"{sub.lesson}.ipynb")
    result = api.autograde(sub.lesson, sub.student_id)
    if not result["success"]:
        sub.status, sub.reason = "failed", explain_failure(result.get("log", "") + result.get("error", ""))
        return sub
    autograded = work / "autograded" / sub.student_id / sub.lesson / f"{sub.lesson}.ipynb"
    notes += fault_reasons(autograded)
    if _worker.get("verify", True):
        import nbformat

        passed = _passed_cells(db_url, sub.lesson, sub.student_id)
        verdicts = {}  # a cell that scored nothing needs no second opinion
        if passed:
            source_nb = nbformat.read(work / "source" / sub.lesson / f"{sub.lesson}.ipynb", as_version=4)
            release_nb = nbformat.read(work / "release" / sub.lesson / f"{sub.lesson}.ipynb", as_version=4)
            student_nb = nbformat.read(autograded, as_version=4)
            # The tests here, the student's cells at arm's length in a process that sees the student's files.
            verdicts = verify(source_nb, student_nb, sub.lesson, passed, autograded.parent, _worker["hide"],
                              release_nb=release_nb)
        lowered = _apply_verification(db_url, sub, verdicts)
        if lowered:
            notes.append("tests failed outside the notebook kernel: " + "; ".join(lowered))
            _note_in_notebook(autograded, verdicts, {g for g, v in verdicts.items() if not v.passed})
    sub.score, sub.max_score, failed, missing = _failed_cells(db_url, sub.lesson, sub.student_id)
    if missing:
        sub.status, sub.reason = "failed", (f"the gradebook has no grade for {', '.join(missing)}: the lesson was registered "
                                            "again while this notebook was graded; grade again: re-running is safe")
        return sub
    sub.status = "graded"
    if failed:
        notes.append(f"tests failed: {', '.join(failed)}")
    sub.reason = "; ".join(notes)
    feedback = api.generate_feedback(sub.lesson, sub.student_id)
    html = work / "feedback" / sub.student_id / sub.lesson / f"{sub.lesson}.html"
    if feedback["success"] and html.is_file():
        sub.feedback = html
    return sub


def register_students(db_url: str, student_ids: list[str]) -> None:
    """Create every student in the gradebook once, here, before the workers start.

    Two workers autograding two lessons of the same new student would otherwise both
    insert that student, and one of them would fail on the unique constraint.
    """
    from nbgrader.api import Gradebook

    with Gradebook(db_url, COURSE_ID) as gb:
        for student_id in student_ids:
            gb.update_or_create_student(student_id)


def _share_of_cores(jobs: int) -> int:
    import os

    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def grade_all(submissions: list[Submission], work: pathlib.Path, db_url: str, jobs: int = 1,
              progress: bool = True, hide: list[str] | None = None, verify: bool = True) -> list[Submission]:
    """Grade every ``pending`` submission with ``jobs`` worker processes; others pass through."""
    pending = [s for s in submissions if s.status == "pending"]
    register_students(db_url, sorted({s.student_id for s in pending}))
    preload = None
    if PRELOAD and pending:
        from .isolation import modules_imported_by

        lessons = sorted({s.lesson for s in pending})
        preload = ["ipykernel.kernelapp", *modules_imported_by([work / "source" / x / f"{x}.ipynb" for x in lessons])]
        if any(m.split(".")[0] == "torch" for m in preload):
            preload.append("torch._dynamo")  # an optimizer's first step imports it (2 s); the verification processes need it too
    done: dict[int, Submission] = {}
    bar = tqdm(total=len(pending), desc="grading", unit="notebook", disable=not progress)
    queue = list(range(len(pending)))
    solo = False  # after a worker crash, retry the unfinished ones one at a time to find the culprit
    while queue:
        batch, queue = (queue[:1], queue[1:]) if solo else (queue, [])
        with cf.ProcessPoolExecutor(max_workers=1 if solo else jobs, initializer=_init_worker,
                                    initargs=(work, db_url, hide, verify, preload, _share_of_cores(1 if solo else jobs))) as pool:
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
