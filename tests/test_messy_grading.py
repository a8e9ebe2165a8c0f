"""End to end, through nbgrader: an honest-but-messy class gets full marks with true reasons, `check` agrees
with `grade` on every notebook, wrong answers in messy notebooks still lose their points, an infinite loop
costs fitted time limits, and `check` never copies the folder a notebook sits in.

The repair step itself is tested on every lesson and every kind without a kernel (tests/test_repair.py);
here lesson 02 (NumPy) and lesson 06 (PyTorch) get the kinds that change what runs or how the file is read,
in one grading run.
"""

import concurrent.futures as cf
import io
import os
import pathlib
import re
import subprocess
import sys

import pytest

from autograder.config import CELL_TIMEOUT_S
from tests import messy
from tests.test_autograder import autograder, read_grades
from tests.test_repair import wrong

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Every kind is repaired on every lesson without a kernel (tests/test_repair.py); through the grader, the
# kinds that change what runs, or how the file is read, with CI's time in mind.
# (browser_download, windows_line_endings and solution_below_tests, close cousins of colab_copy, byte_order_mark
# and exercises_swapped, are left to tests/test_repair.py: CI's 30 minutes.)
KINDS_02 = ["clean", "copied_test", "duplicated_solution", "colab_copy", "byte_order_mark", "colab", "vscode",
            "custom_kernel", "shell_and_magics", "split_solution", "solution_as_markdown", "exercises_swapped",
            "retyped_solution", "markdown_test_cell", "stripped_marks"]
WRONG_KINDS = ["clean", "duplicated_solution", "split_solution", "solution_as_markdown"]
SAMPLE = {"02_convolution": KINDS_02,
          "06_receptive_fields": ["clean", "copied_test", "duplicated_solution", "byte_order_mark", "split_solution"]}


def check(path: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "check", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)


@pytest.mark.slow
def test_a_messy_class_gets_what_its_code_earns_and_check_agrees(tmp_path):
    subs, out = tmp_path / "submitted", tmp_path / "out"
    honest, dishonest = {}, {}
    for lesson, kinds in SAMPLE.items():
        for kind in kinds:
            honest[(kind, lesson)] = messy.put(subs, kind, lesson, kind)
        for kind in WRONG_KINDS[:None if lesson == "02_convolution" else 2]:
            dishonest[(f"wrong_{kind}", lesson)] = messy.put(subs, f"wrong_{kind}", lesson, kind, **wrong(lesson))
    messy.put(subs, "looper", "02_convolution", "clean", **messy.looping("02_convolution"))

    result = autograder("grade", str(subs), "--out", str(out), "--jobs", "2", "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    grades = read_grades(out)
    for kind, lesson in honest:
        row = grades[(kind, lesson)]
        assert row["status"] == "graded" and row["score"] == row["max_score"], (kind, lesson, row)
        note = messy.expected_note(kind, lesson)
        assert (note in row["reason"]) if note else row["reason"] == "", (kind, lesson, row["reason"])
        assert "altered" not in row["reason"] and "deleted" not in row["reason"], row
    for (student, lesson) in dishonest:
        row = grades[(student, lesson)]
        assert row["status"] == "graded" and float(row["score"]) < float(row["max_score"]), (student, lesson, row)
        assert "tests failed: " in row["reason"], row
    scores = {lesson: {grades[(s, lesson)]["score"] for (s, x) in dishonest if x == lesson} for lesson in SAMPLE}
    assert all(len(s) == 1 for s in scores.values()), scores  # the same points lost, however messy
    loop = grades[("looper", "02_convolution")]
    took = re.search(r"timed out in test_correlate2d after (\d+) s", loop["reason"])
    assert took and int(took.group(1)) < CELL_TIMEOUT_S, loop

    # check agrees with grade: every honest notebook passes, every wrong one fails.
    paths = [honest[k] for k in honest if k[1] == "02_convolution"] + [honest[("copied_test", "06_receptive_fields")]]
    paths += [dishonest[("wrong_duplicated_solution", "02_convolution")]]
    with cf.ThreadPoolExecutor(2) as pool:
        results = dict(zip(paths, pool.map(check, paths)))
    for path, ran in results.items():
        expected = 1 if "wrong_" in str(path) else 0
        assert ran.returncode == expected, (path, ran.stdout[-2000:], ran.stderr[-2000:])


@pytest.mark.slow
def test_check_copies_only_the_lessons_files_from_a_crowded_folder(tmp_path, monkeypatch):
    from autograder import check as check_module
    from autograder.execute import ResilientExecute

    downloads = tmp_path / "Downloads"
    (downloads / "photos").mkdir(parents=True)
    (downloads / "photos" / "big.bin").write_bytes(os.urandom(1 << 20))
    (downloads / "itself").symlink_to(downloads)  # what filled the disk: the folder holds its own copy
    name, data = messy.make("clean", "02_convolution")
    (downloads / name).write_bytes(data)
    seen = []
    preprocess = ResilientExecute.preprocess

    def spy(self, nb, resources=None, km=None):
        seen.append(sorted(os.listdir(resources["metadata"]["path"])))
        return preprocess(self, nb, resources, km)

    monkeypatch.setattr(ResilientExecute, "preprocess", spy)
    out = io.StringIO()
    assert check_module.check(downloads / name, out=out) == 0, out.getvalue()
    assert seen == [[]]  # lesson 02 ships no file but its notebook
