"""One gradebook in a real PostgreSQL server, two graders on disjoint shards at the same time.

The setup starts a private PostgreSQL cluster on a free loopback port in a temporary
folder (Debian's ``postgresql`` package: ``/usr/lib/postgresql/*/bin``; as the
``postgres`` user when the tests run as root) and needs ``psycopg2`` for SQLAlchemy.
Skipped, with the reason, where either is missing.
"""

import csv
import glob
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile

import nbformat
import pytest

from tests.notebook_runner import graded_test_cells, points, solution_cells

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON = "02_convolution"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    pytest.importorskip("psycopg2", reason="psycopg2 (psycopg2-binary) is not installed")
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bindirs:
        pytest.skip("PostgreSQL server not installed (apt-get install -y postgresql)")
    bindir = pathlib.Path(bindirs[-1])
    as_postgres = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    folder = pathlib.Path(tempfile.mkdtemp(prefix="cnn-pg-"))
    os.chmod(folder, 0o755)
    data, sockets = folder / "data", folder / "sock"
    for p in (data, sockets):
        p.mkdir()
        if as_postgres:
            shutil.chown(p, "postgres", "postgres")
    port = _free_port()
    run = lambda *cmd: subprocess.run([*as_postgres, *cmd], capture_output=True, text=True, timeout=120)  # noqa: E731
    result = run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "grader")
    if result.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"initdb failed: {result.stderr[-2000:]}")
    result = run(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(sockets / "log"),
                 "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1", "start")
    if result.returncode != 0:
        log = (sockets / "log").read_text() if (sockets / "log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {result.stderr}{log[-2000:]}")
    try:
        created = subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "grader",
                                  "gradebook"], capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stderr
        yield f"postgresql+psycopg2://grader@127.0.0.1:{port}/gradebook"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_graders_share_one_postgres_gradebook(tmp_path, postgres_url):
    subs = tmp_path / "submitted"
    solutions = solution_cells(LESSON)
    expected = {}
    for i in range(4):  # two full, one partial, one untouched
        nb = nbformat.read(ROOT / "lessons" / LESSON / f"{LESSON}.ipynb", as_version=4)
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in solutions and (i < 2 or (i == 2 and gid == "correlate2d")):
                cell.source = solutions[gid]
        (subs / f"s{i}" / LESSON).mkdir(parents=True)
        nbformat.write(nb, subs / f"s{i}" / LESSON / f"{LESSON}.ipynb")
        expected[f"s{i}"] = {0: points(LESSON), 1: points(LESSON), 2: points(LESSON, "correlate2d"), 3: 0.0}[i]
    workers = [subprocess.Popen([sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(tmp_path / f"out{k}"),
                                 "--db", postgres_url, "--shard", f"{k}/2", "--jobs", "1", "--quiet"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for k in (1, 2)]
    for w in workers:
        _, err = w.communicate(timeout=1800)
        assert w.returncode == 0, err[-3000:]
    rows = []
    for k in (1, 2):
        with (tmp_path / f"out{k}" / "grades.csv").open() as f:
            rows += list(csv.DictReader(f))
    assert sorted(r["student_id"] for r in rows) == ["s0", "s1", "s2", "s3"]  # disjoint shards, all covered
    assert {r["student_id"]: float(r["score"]) for r in rows} == expected, rows  # the rows say why

    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_url)
    with engine.connect() as db:
        per_student = dict(db.execute(sqlalchemy.text(
            "select s.student_id, count(*) from submitted_assignment s group by s.student_id")).all())
        grades = db.execute(sqlalchemy.text(
            "select count(*), count(distinct (g.notebook_id, g.cell_id)) from grade g")).one()
    engine.dispose()
    assert per_student == {"s0": 1, "s1": 1, "s2": 1, "s3": 1}  # every grade exactly once
    assert grades[0] == grades[1] == 4 * len(graded_test_cells(LESSON))

    from nbgrader.api import Gradebook

    with Gradebook(postgres_url, "cnn-course") as gb:
        assert {s: float(gb.find_submission(LESSON, s).score) for s in expected} == expected


def test_a_second_grader_leaves_a_registered_lesson_alone_and_a_changed_lesson_is_registered_again(tmp_path, monkeypatch):
    """nbgrader registers a lesson again by deleting its notebook, with the submissions it has at that
    moment, and adding it back: a second grader starting just as the first created a submission took
    that student's grades away (0 points and no reason in grades.csv)."""
    from nbgrader.api import Gradebook

    from autograder import grade, limits

    monkeypatch.setattr(limits, "FIT", False)
    deleted = []
    remove_notebook = Gradebook.remove_notebook
    monkeypatch.setattr(Gradebook, "remove_notebook",
                        lambda gb, *a: deleted.append(gb.engine.url.database) or remove_notebook(gb, *a))
    db = f"sqlite:///{tmp_path / 'gradebook.db'}"
    first = grade.prepare_workspace(ROOT, tmp_path / "first", [LESSON], db)
    second = grade.prepare_workspace(ROOT, tmp_path / "second", [LESSON], db)
    assert deleted == [] and second == first  # the lesson, already registered as it is, was left alone
    assert (tmp_path / "second" / "release" / LESSON / f"{LESSON}.ipynb").is_file()

    course = tmp_path / "course"  # the instructor changes a test's points before any submission: registered again
    shutil.copytree(ROOT / "solutions" / LESSON, course / "solutions" / LESSON)
    path = course / "solutions" / LESSON / f"{LESSON}.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("points"))
    cell.metadata.nbgrader.points += 1
    nbformat.write(nb, path)
    third = grade.prepare_workspace(course, tmp_path / "third", [LESSON], db)
    assert third[LESSON] == first[LESSON] + 1 and deleted == [str(tmp_path / "gradebook.db")]


def test_a_submission_whose_grades_vanished_is_not_reported_as_zero(tmp_path, monkeypatch):
    from nbgrader.api import Gradebook

    from autograder import grade, limits

    monkeypatch.setattr(limits, "FIT", False)
    db = f"sqlite:///{tmp_path / 'gradebook.db'}"
    grade.prepare_workspace(ROOT, tmp_path / "work", [LESSON], db)
    with Gradebook(db, "cnn-course") as gb:
        gb.update_or_create_student("s0")
        gb.update_or_create_submission(LESSON, "s0")
    assert grade._failed_cells(db, LESSON, "s0")[3] == []  # a fresh submission has a grade for every graded cell
    with Gradebook(db, "cnn-course") as gb:  # what another grader's re-registration did to it
        gb.remove_submission_notebook(LESSON, LESSON, "s0")
    score, max_score, failed, missing = grade._failed_cells(db, LESSON, "s0")
    assert (score, max_score, failed) == (0.0, points(LESSON), [])  # what grades.csv said: 0 of 19, no failed test
    assert missing == sorted(graded_test_cells(LESSON))  # what it says now: failed, grade again


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_graders_sharing_a_gradebook_register_lessons_one_at_a_time(database, tmp_path, request):
    import threading
    import time

    from autograder.grade import _one_grader_at_a_time

    url = request.getfixturevalue("postgres_url") if database == "postgresql" else f"sqlite:///{tmp_path / 'gradebook.db'}"
    order = []

    def second_grader():
        with _one_grader_at_a_time(url):
            order.append("second")

    with _one_grader_at_a_time(url):
        thread = threading.Thread(target=second_grader)
        thread.start()
        time.sleep(1.0)  # the second grader has asked for the lock by now and must wait
        order.append("first")
    thread.join(timeout=60)
    assert order == ["first", "second"]
