"""What an infinite loop in one function costs the grader, per lesson, with the fitted time limits.

    python benchmarks/infinite_loop_cost.py                          # every lesson with exercises
    python benchmarks/infinite_loop_cost.py 02_convolution,06_receptive_fields
    python benchmarks/infinite_loop_cost.py 01_fully_connected_limits --answers code

For each lesson: the workspace is prepared as `grade` prepares it (the measuring run of
autograder/limits.py included), then one grading worker grades two notebooks, the
reference solution and the same notebook whose first function starts with `while True:
pass`, and the seconds each took are printed (grade_one: repair, nbgrader's autograde with
kernels forked from the warm zygote, verification, feedback), with the looper's reason.
Both answer each question with the value itself, as the lessons ask (``--answers values``), or
with the instructor's code, which calls the student's functions (``--answers code``: the
looper's question cells that call its first function then hang too).
Run it on an otherwise idle machine; it times real work.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("CNN_COURSE_MODE", "smoke")


def main(lessons: list[str], answers: str = "values") -> None:
    from autograder import grade
    from autograder.collect import collect
    from autograder.config import PRELOAD
    from autograder.isolation import modules_imported_by, stop_zygote
    from tests import messy
    from tests.notebook_runner import questions, solution_cells

    for lesson in lessons:
        work = pathlib.Path(tempfile.mkdtemp(prefix="cnn-loop-cost-"))
        subs, db = work / "class", f"sqlite:///{work}/gradebook.db"
        code = {q: solution_cells(lesson)[q] for q in questions(lesson)} if answers == "code" else {}
        messy.put(subs, "reference", lesson, "clean", **code)
        messy.put(subs, "looper", lesson, "clean", **{**code, **messy.looping(lesson)})
        start = time.monotonic()
        grade.prepare_workspace(ROOT, work / "workspace", [lesson], db)
        prepared = time.monotonic() - start
        grade.register_students(db, ["looper", "reference"])
        preload = None
        if PRELOAD:
            source = work / "workspace" / "source" / lesson / f"{lesson}.ipynb"
            preload = ["ipykernel.kernelapp", *modules_imported_by([source])]
            preload += ["torch._dynamo"] if any(m.split(".")[0] == "torch" for m in preload) else []
        grade._init_worker(work / "workspace", db, [str(subs)], True, preload)
        took = {}
        for sub in collect(subs, [lesson]):
            start = time.monotonic()
            graded = grade.grade_one(sub)
            took[sub.student_id] = (time.monotonic() - start, graded)
        stop_zygote()
        (loop_s, loop), (ref_s, ref) = took["looper"], took["reference"]
        print(f"{lesson}: looper {loop_s:.1f} s ({loop.score:g}/{loop.max_score:g}), reference {ref_s:.1f} s "
              f"({ref.score:g}/{ref.max_score:g}); workspace {prepared:.1f} s with its measuring run\n"
              f"    {loop.reason}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lessons", nargs="?", help="lesson ids, comma-separated (default: every lesson with exercises)")
    parser.add_argument("--answers", choices=["values", "code"], default="values",
                        help="how both students answer the questions: the value itself (default), or the "
                             "instructor's code, which calls their functions")
    args = parser.parse_args()
    from autograder.config import lesson_ids
    from tests.notebook_runner import solution_cells

    main(args.lessons.split(",") if args.lessons else [x for x in lesson_ids(ROOT) if solution_cells(x)], args.answers)
