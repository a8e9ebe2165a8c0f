"""Grading throughput: plain sequential ``nbgrader autograde`` against ``python -m autograder grade``.

Builds one synthetic class of one lesson (a third full solutions, a third with one
function solved, a third untouched), grades it both ways and prints both times and
the ratio. Not a test: it takes minutes (about 100 x the notebook's run time for the
default class).

    python benchmarks/grading_throughput.py --students 100 --jobs 2
    python benchmarks/grading_throughput.py --students 10 --jobs 2 --no-verify

The baseline runs nbgrader's own command line once for the whole class (one
start-up, kernels one after another) in a separate course directory with
nbgrader's stock preprocessors and the same 120 s cell timeout. Ours adds the
sandbox, the fault handling and (unless ``--no-verify``) the out-of-kernel
verification, and grades ``--jobs`` notebooks at a time.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def synthetic_class(lesson: str, students: int, into: pathlib.Path) -> None:
    from tests.notebook_runner import solution_cells

    solutions = solution_cells(lesson)
    first = next(iter(solutions))
    for i in range(students):
        nb = nbformat.read(ROOT / "lessons" / lesson / f"{lesson}.ipynb", as_version=4)
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in solutions and (i % 3 == 0 or (i % 3 == 1 and gid == first)):
                cell.source = solutions[gid]
        folder = into / f"student{i:03d}" / lesson
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{lesson}.ipynb")


def plain_nbgrader(lesson: str, subs: pathlib.Path, scratch: pathlib.Path) -> float:
    course = scratch / "plain"
    shutil.copytree(ROOT / "solutions" / lesson, course / "source" / lesson)
    shutil.copytree(subs, course / "submitted")
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.CourseDirectory.course_id = 'bench'\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.Execute.timeout = 120\n"
        "c.IgnorePattern.enabled = True\n"
        "c.IgnorePattern.pattern = r'[\\s\\S]'\n")
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    nbgrader = [sys.executable, "-m", "nbgrader"]
    subprocess.run([*nbgrader, "generate_assignment", lesson, "--force"], cwd=course, env=env, check=True,
                   capture_output=True)
    start = time.perf_counter()
    subprocess.run([*nbgrader, "autograde", lesson], cwd=course, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def ours(lesson: str, subs: pathlib.Path, scratch: pathlib.Path, jobs: int, verify: bool) -> float:
    start = time.perf_counter()
    command = [sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(scratch / "ours"),
               "--lessons", lesson, "--jobs", str(jobs), "--quiet"] + ([] if verify else ["--no-verify"])
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesson", default="02_convolution")
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-verify", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cnn-bench-") as scratch:
        scratch = pathlib.Path(scratch)
        subs = scratch / "submitted"
        synthetic_class(args.lesson, args.students, subs)
        t_plain = plain_nbgrader(args.lesson, subs, scratch)
        t_ours = ours(args.lesson, subs, scratch, args.jobs, not args.no_verify)
    print(f"lesson {args.lesson}, {args.students} submissions, {os.cpu_count()} CPUs")
    print(f"plain sequential nbgrader autograde: {t_plain:8.1f} s ({t_plain / args.students:.2f} s per notebook)")
    print(f"python -m autograder grade --jobs {args.jobs}{' --no-verify' if args.no_verify else ''}: "
          f"{t_ours:8.1f} s ({t_ours / args.students:.2f} s per notebook)")
    print(f"ratio (plain / ours): {t_plain / t_ours:.2f}x")


if __name__ == "__main__":
    main()
