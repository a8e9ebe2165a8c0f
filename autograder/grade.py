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
import sys

from tqdm.auto import tqdm

from . import limits, repair
from .collect import Submission, copy_submission, dropped_note
from .config import CELL_TIMEOUT_S, COURSE_ID, KERNEL_LIMITS, PRELOAD, SUBMISSION_TIMEOUT_S, course_config, ensure_tools_on_path
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


def _api_for(db_url: str):
    """This worker's nbgrader API on another gradebook (the canary's), made once."""
    apis = _worker.setdefault("apis", {})
    if db_url not in apis:
        apis[db_url] = _make_api(_worker["work"], db_url, _worker["hide"])
    return apis[db_url]


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
    _worker.update(api=_make_api(work, db_url, hide), work=work, db_url=db_url, hide=hide, verify=verify,
                   cell_limits=limits.load(work / "cell_limits.json"))
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


def fault_reasons(autograded: pathlib.Path) -> list[str]:
    """Plain reasons for the faults autograder.execute recorded in the autograded notebook."""
    import nbformat

    if not autograded.is_file():
        return []
    from .execute import FAULTS, solution_errors

    nb = nbformat.read(autograded, as_version=4)
    reasons = solution_errors(nb)  # a function that never came to exist: the reason its tests failed
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            ename, evalue = output.get("ename", ""), output.get("evalue", "")
            if ename in FAULTS:
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


def grade_one(sub: Submission, db_url: str | None = None) -> Submission:
    """Autograde one collected submission in this worker; fill in score, status, reason, feedback.

    ``db_url``: another gradebook than the class's (the canary's, see :func:`grade_all`)."""
    import time

    deadline = time.monotonic() + SUBMISSION_TIMEOUT_S  # the kernel, then verification, share this budget
    work = _worker["work"]
    api, db_url = (_worker["api"], _worker["db_url"]) if db_url is None else (_api_for(db_url), db_url)
    sub = dataclasses.replace(sub)
    dest = work / "submitted" / sub.student_id / sub.lesson
    for stale in (dest, work / "autograded" / sub.student_id / sub.lesson, work / "feedback" / sub.student_id / sub.lesson):
        if stale.exists():
            shutil.rmtree(stale)
    dropped = copy_submission(sub.folder, dest)  # links are dropped, never followed: they may lead to the hidden tests
    if sub.notebook.name in dropped or not (dest / sub.notebook.name).is_file():  # swapped for a link since collect
        sub.status, sub.reason = "failed", f"{sub.notebook.name} is not a file: links are never followed"
        return sub
    notes = repair.repair_submission(dest / sub.notebook.name, sub.lesson,  # one <lesson>.ipynb, repaired
                                     work / "release" / sub.lesson / f"{sub.lesson}.ipynb",
                                     work / "source" / sub.lesson / f"{sub.lesson}.ipynb")
    notes += dropped_note(dropped)
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
                              release_nb=release_nb, deadline=deadline,
                              cell_limits=_worker["cell_limits"].get(sub.lesson, {}))
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


# A submission's worker is ended this long after its budget (SUBMISSION_TIMEOUT_S) is spent: time for the
# feedback page and the gradebook, which are the grader's own work on bounded data.
OVERRUN_GRACE_S = 120
# Graded cells that need what only a student's own run makes: the canary is excused them when its folder lacks it.
NEEDS_OWN_OUTPUT = {"test_cifar10_checkpoint": "cifar10_model.pt"}
CANARY_ID = "instructor-canary"  # in a gradebook of its own: never a row of the class's
NOT_GRADED = "not graded: the instructor's own solution did not get full marks through the grader"


def canary_submission(work: pathlib.Path, lesson: str) -> Submission:
    """The instructor's own solution as a student would hand it in: the released notebook with every solution cell
    filled in from the source, beside the lesson's files (``work/canary/<lesson>``)."""
    import nbformat

    folder = work / "canary" / CANARY_ID / lesson
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(work / "source" / lesson, folder, ignore=shutil.ignore_patterns("*.ipynb"))
    release = nbformat.read(work / "release" / lesson / f"{lesson}.ipynb", as_version=4)
    source = nbformat.read(work / "source" / lesson / f"{lesson}.ipynb", as_version=4)
    solutions = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
                 if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in release.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and gid in solutions:
            cell.source = solutions[gid]
    nbformat.write(release, folder / f"{lesson}.ipynb")
    return Submission(CANARY_ID, lesson, folder)


def canary_gradebook(work: pathlib.Path, lesson: str) -> str:
    """A gradebook for one lesson's canary: a copy of the private one the lessons were registered in."""
    target = work / "canary" / f"{lesson}.db"
    shutil.copyfile(work / "registration.db", target)
    return f"sqlite:///{target}"


def canary_problem(graded: Submission, db_url: str, work: pathlib.Path) -> str:
    """'' when the canary got full marks (cells it is excused apart), else what went wrong, in plain words."""
    if graded.status != "graded":
        return f"{graded.status}: {graded.reason}"
    short = [name for name in _short_cells(db_url, graded)
             if not (name in NEEDS_OWN_OUTPUT and not (graded.folder / NEEDS_OWN_OUTPUT[name]).is_file())]
    if short:
        error = _first_error(work / "autograded" / graded.student_id / graded.lesson / f"{graded.lesson}.ipynb")
        return f"{graded.score:g}/{graded.max_score:g}, short in {', '.join(short)}{error}; {graded.reason}"
    return ""


def _first_error(autograded: pathlib.Path) -> str:
    """'; first error: <cell>: <exception>' from a graded notebook's outputs ('' if none): often the whole story."""
    import nbformat

    if not autograded.is_file():
        return ""
    for i, cell in enumerate(nbformat.read(autograded, as_version=4).cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"; first error: {_grade_id(cell, i)}: {output.get('ename')}: {output.get('evalue', '')[:200]}"
    return ""


def _short_cells(db_url: str, graded: Submission) -> list[str]:
    from nbgrader.api import Gradebook

    with Gradebook(db_url, COURSE_ID) as gb:
        submission = gb.find_submission(graded.lesson, graded.student_id)
        return [g.name for nb in submission.notebooks for g in nb.grades if g.max_score > 0 and g.score < g.max_score]


def _timed(task, index: int, *args) -> Submission:
    """Run ``task(*args)`` in a worker, first telling the parent which worker started which task, and when."""
    import os
    import time

    _worker["started"].put((index, os.getpid(), time.monotonic()))  # CLOCK_MONOTONIC: one clock for all processes
    return task(*args)


class _Workers:
    """Worker processes for grading, made again when one crashes or is ended. After a crash, ``solo`` grades
    one submission at a time in a fresh worker each, so that the crash names its culprit; a worker whose
    submission is past its budget is killed from here, and the others' submissions are graded again."""

    def __init__(self, jobs: int, initargs: tuple, task=None, initializer=None):
        import multiprocessing

        self.jobs, self.initargs, self.pool, self.solo = jobs, initargs, None, False
        self.task, self.initializer = task or grade_one, initializer or _init_worker
        self.started = multiprocessing.get_context("fork").SimpleQueue()

    def new_pool(self) -> cf.ProcessPoolExecutor:
        import multiprocessing

        self.close()
        jobs = 1 if self.solo else self.jobs
        self.pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"),
                                           initializer=_start_worker,
                                           initargs=(self.started, self.initializer,
                                                     (*self.initargs, _share_of_cores(jobs))))
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def grade(self, tasks: list[tuple], bar, judge=None) -> list[Submission | None]:
        """Grade every (submission, gradebook) task, in order; whatever happens to one, the others get their result.

        ``judge(i, result)``, called on each result as it comes, may return a predicate of task numbers: the tasks
        it accepts that have not started are then not graded (their result is None)."""
        import os
        import signal
        import time

        done: dict[int, Submission | None] = {}
        skipped = [lambda k: False]

        def settle(i: int, result: Submission | None) -> None:
            done[i] = result
            bar.update()
            verdict = judge(i, result) if judge is not None and result is not None else None
            if verdict is not None:
                skipped[0] = lambda k, before=skipped[0]: before(k) or verdict(k)

        queue = list(range(len(tasks)))
        while queue:
            batch, queue = (queue[:1], queue[1:]) if self.solo else (queue, [])
            for i in [i for i in batch if skipped[0](i)]:
                settle(i, None)
            batch = [i for i in batch if not skipped[0](i)]
            if not batch:
                continue
            pool = self.pool if self.pool is not None and not self.solo else self.new_pool()
            futures = {pool.submit(_timed, self.task, i, *tasks[i]): i for i in batch}
            running: dict[int, tuple[int, float]] = {}  # task -> (worker pid, when it started)
            broken, overdue = [], set()
            pending = set(futures)
            while pending:
                finished, pending = cf.wait(pending, timeout=1, return_when=cf.FIRST_COMPLETED)
                while not self.started.empty():
                    i, pid, when = self.started.get()
                    running[i] = (pid, when)
                for future in pending:  # past its budget: end its worker, whatever it is stuck in
                    i = futures[future]
                    if i in running and time.monotonic() - running[i][1] > SUBMISSION_TIMEOUT_S + OVERRUN_GRACE_S:
                        overdue.add(i)
                        with contextlib.suppress(OSError):
                            os.kill(running[i][0], signal.SIGKILL)
                for future in finished:
                    i = futures[future]
                    try:
                        settle(i, None if future.cancelled() else future.result())
                    except cf.process.BrokenProcessPool:
                        if i not in overdue:
                            broken.append(i)
                            continue
                        settle(i, dataclasses.replace(tasks[i][0], status="failed", reason=(
                            f"grading this notebook took longer than its budget of {SUBMISSION_TIMEOUT_S} s "
                            f"(+{OVERRUN_GRACE_S} s for the grader's own work): it was stopped")))
                    except Exception as exc:  # a bug of ours or nbgrader's: report it for this student only
                        settle(i, dataclasses.replace(tasks[i][0], status="failed",
                                                      reason=f"grader error: {type(exc).__name__}: {exc}"[:400]))
                for future in pending:  # what a judgement just ruled out is not graded
                    if skipped[0](futures[future]):
                        future.cancel()
            if broken or overdue:
                self.close()
            if broken and self.solo and not overdue:
                settle(broken[0], dataclasses.replace(tasks[broken[0]][0], status="failed",
                                                      reason="the grading process crashed on this notebook"))
            elif broken:  # graded again: one at a time after a crash, as before after a worker we ended
                queue, self.solo = sorted(broken) + queue, self.solo or not overdue
        return [done.get(i) for i in range(len(tasks))]


def _start_worker(started, initializer, initargs: tuple) -> None:
    _worker["started"] = started
    initializer(*initargs)


def grade_all(submissions: list[Submission], work: pathlib.Path, db_url: str, jobs: int = 1,
              progress: bool = True, hide: list[str] | None = None, verify: bool = True,
              canary: bool = True) -> list[Submission]:
    """Grade every ``pending`` submission with ``jobs`` worker processes; others pass through.

    With each lesson, the instructor's own solution goes through the very same path (sandbox, limits,
    verification), first in the queue, into a gradebook of its own. Unless it gets full marks, the grading
    machine is broken for that lesson (a package the sandbox cannot see, say): its students not yet started
    are not graded, those graded beside it are taken out of the gradebook again, and every one of them is
    ``failed`` with what went wrong. The canary thus costs one notebook's turn in the queue, not a wait."""
    pending = [s for s in submissions if s.status == "pending"]
    register_students(db_url, sorted({s.student_id for s in pending}))
    lessons = sorted({s.lesson for s in pending})
    preload = None
    if PRELOAD and pending:
        from .isolation import modules_imported_by

        preload = ["ipykernel.kernelapp", *modules_imported_by([work / "source" / x / f"{x}.ipynb" for x in lessons])]
        if any(m.split(".")[0] == "torch" for m in preload):
            preload.append("torch._dynamo")  # an optimizer's first step imports it (2 s); the verification processes need it too
    tasks = [(s, None) for s in pending]
    if canary and lessons:
        (work / "canary").mkdir(exist_ok=True)
        tasks = [(canary_submission(work, lesson), canary_gradebook(work, lesson)) for lesson in lessons] + tasks
    canaries = len(tasks) - len(pending)
    broken: dict[str, str] = {}

    def judge(i: int, graded: Submission):
        if i >= canaries:
            return None
        problem = canary_problem(graded, tasks[i][1], work)
        if not problem:
            return None
        broken[graded.lesson] = problem
        print(f"autograder: not grading {graded.lesson}: the instructor's own solution did not get full marks "
              f"through the grader ({problem})", file=sys.stderr)
        return lambda k: k >= canaries and tasks[k][0].lesson == graded.lesson

    workers = _Workers(jobs, (work, db_url, hide, verify, preload))
    try:
        with tqdm(total=len(tasks), desc="grading", unit="notebook", disable=not progress) as bar:
            results = workers.grade(tasks, bar, judge)[canaries:]
    finally:
        workers.close()
    _take_back(db_url, [s for s in results if s is not None and s.lesson in broken])
    by_key = {(s.student_id, s.lesson): s for s in results if s is not None}
    for s in pending:
        if s.lesson in broken:
            by_key[(s.student_id, s.lesson)] = dataclasses.replace(s, status="failed", reason=(
                f"{NOT_GRADED} on this machine ({broken[s.lesson]}); fix the grading setup "
                "(python -m autograder doctor) and grade again"))
    return [by_key.get((s.student_id, s.lesson), s) for s in submissions]


def _take_back(db_url: str, graded: list[Submission]) -> None:
    """Remove from the gradebook the submissions graded by a machine that failed its canary: no grade of theirs
    stands (nor does it reach an export)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, COURSE_ID) as gb:
        for sub in graded:
            with contextlib.suppress(MissingEntry):
                gb.remove_submission(sub.lesson, sub.student_id)
