"""The Kubernetes recipe: the Job manifest checked, and its container's command run here as two "pods".

The pods are two processes with the index variable Kubernetes gives them, grading into the
PostgreSQL server that ``tests/test_autograder_postgres.py`` starts (its fixture, reused).
"""

from __future__ import annotations

import csv
import os
import pathlib
import re
import subprocess
import sys

import nbformat
import pytest
import yaml

from autograder.__main__ import build_parser, parse_shard
from tests.notebook_runner import graded_test_cells, points, solution_cells
from tests.test_autograder_postgres import postgres_url  # noqa: F401  (the fixture)

ROOT = pathlib.Path(__file__).resolve().parent.parent
JOB = ROOT / "deploy" / "grading-job.yaml"
LESSON = "02_convolution"


def _job() -> dict:
    return yaml.safe_load(JOB.read_text())


def _container(job: dict) -> dict:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def _expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes's ``$(VAR)`` expansion in a container's command and args."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), arg)


def test_the_manifest_is_an_indexed_job_whose_pods_cover_every_shard():
    job = _job()
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["completionMode"] == "Indexed" and pod["restartPolicy"] == "Never"
    container = _container(job)
    assert container["command"] == ["python", "-m", "autograder"]
    args = build_parser().parse_args(container["args"])  # the grader accepts exactly these arguments
    assert args.command == "grade"
    variable, _, count = args.shard.partition("/")
    assert variable == "JOB_COMPLETION_INDEX" and int(count) == spec["completions"] >= spec["parallelism"] >= 1
    shards = {parse_shard(args.shard, {"JOB_COMPLETION_INDEX": str(k)}) for k in range(spec["completions"])}
    assert shards == {(i, spec["completions"]) for i in range(1, spec["completions"] + 1)}  # each slice once
    # every pod writes its own folder; the gradebook is shared, from a secret, not written in the manifest
    assert "$(JOB_COMPLETION_INDEX)" in args.out and args.db == "$(GRADEBOOK_URL)"
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["GRADEBOOK_URL"]["valueFrom"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"] for v in pod["volumes"]}
    assert {m["name"] for m in mounts.values()} <= volumes
    assert mounts["/submissions"]["readOnly"] and args.submissions == "/submissions"
    assert any(args.out.startswith(path + "/") and not m.get("readOnly") for path, m in mounts.items())
    security = container["securityContext"]  # the sandbox needs namespaces and a fresh /proc (see the guide)
    assert security.get("privileged") or "SYS_ADMIN" in security.get("capabilities", {}).get("add", [])
    memory = container["resources"]["limits"]["memory"]
    assert int(memory.removesuffix("Gi")) >= 4 * int(args.jobs) + 1


def test_the_image_runs_the_command_the_manifest_gives():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", text, re.MULTILINE)
    assert entrypoint and yaml.safe_load(entrypoint[1]) == _container(_job())["command"]
    assert "-r requirements.txt" in text and "psycopg2-binary" in text and "bubblewrap" in text
    assert re.search(r"^FROM python:3\.1\d", text, re.MULTILINE)


def test_shard_from_the_environment():
    assert parse_shard("2/3") == (2, 3)
    assert parse_shard("JOB_COMPLETION_INDEX/4", {"JOB_COMPLETION_INDEX": "0"}) == (1, 4)
    assert parse_shard("JOB_COMPLETION_INDEX/4", {"JOB_COMPLETION_INDEX": "3"}) == (4, 4)
    for text, environ, message in [
        ("JOB_COMPLETION_INDEX/4", {}, "JOB_COMPLETION_INDEX is not set"),
        ("JOB_COMPLETION_INDEX/4", {"JOB_COMPLETION_INDEX": "4"}, "expected 0 to 3"),
        ("JOB_COMPLETION_INDEX/4", {"JOB_COMPLETION_INDEX": "one"}, "must be I/N"),
        ("0/4", {}, "must be I/N"),
        ("$JOB_COMPLETION_INDEX/4", {"JOB_COMPLETION_INDEX": "1"}, "must be I/N"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_shard(text, environ)


@pytest.mark.slow
def test_two_pods_put_every_grade_in_the_gradebook_exactly_once(tmp_path, postgres_url):  # noqa: F811
    subs, results = tmp_path / "submissions", tmp_path / "results"
    solutions = solution_cells(LESSON)
    expected = {"s0": points(LESSON), "s1": points(LESSON, "correlate2d")}  # one full, one partial: one per pod
    for student in expected:
        nb = nbformat.read(ROOT / "lessons" / LESSON / f"{LESSON}.ipynb", as_version=4)
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in solutions and (student == "s0" or (student == "s1" and gid == "correlate2d")):
                cell.source = solutions[gid]
        (subs / student / LESSON).mkdir(parents=True)
        nbformat.write(nb, subs / student / LESSON / f"{LESSON}.ipynb")
    job = _job()
    container = _container(job)
    pods = 2  # the manifest's N, made 2 here; the volumes become local folders
    args = [a.replace("/4", f"/{pods}") if a.startswith("JOB_COMPLETION_INDEX/") else a for a in container["args"]]
    args = [a.replace("/submissions", str(subs)).replace("/results", str(results)) for a in args]
    args[args.index("--jobs") + 1] = "1"
    command = [sys.executable if c == "python" else c for c in container["command"]]
    workers = []
    for index in range(pods):
        env = {**os.environ, "JOB_COMPLETION_INDEX": str(index), "GRADEBOOK_URL": postgres_url,
               "CNN_GRADER_FIT_LIMITS": "0", "CNN_GRADER_PRELOAD": "0"}  # a short test: no measuring run, no preload
        workers.append(subprocess.Popen([*command, *[_expand(a, env) for a in args]], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for w in workers:
        _, err = w.communicate(timeout=1800)
        assert w.returncode == 0, err[-3000:]
    rows = []
    for index in range(pods):
        with (results / f"shard-{index}" / "grades.csv").open() as f:
            rows += list(csv.DictReader(f))
    assert sorted(r["student_id"] for r in rows) == sorted(expected)  # every student in exactly one pod
    assert {r["student_id"]: float(r["score"]) for r in rows} == expected, rows  # the rows say why

    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_url)
    with engine.connect() as db:
        submissions = dict(db.execute(sqlalchemy.text(
            "select student_id, count(*) from submitted_assignment group by student_id")).all())
        grades = db.execute(sqlalchemy.text("select count(*), count(distinct (notebook_id, cell_id)) from grade")).one()
    engine.dispose()
    assert submissions == {s: 1 for s in expected} and grades[0] == grades[1] == 2 * len(graded_test_cells(LESSON))  # each once

    from autograder.export import read_gradebook

    book = read_gradebook(postgres_url)  # what export then writes for the LMS: the whole class, from every pod
    assert book.students == sorted(expected) and {s: book.score[(s, LESSON)] for s in expected} == expected
