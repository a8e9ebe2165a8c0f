"""The hardened grader against an adversarial class of lesson 02, and its parts on their own.

Scores are counted from the notebook's points (tests.notebook_runner.points). convolve2d and
conv2d_forward call correlate2d, so the cheats below sit in convolve2d or conv2d_forward,
which nothing else depends on (students answer the questions with values).
"""

import csv
import os
import pathlib
import socket
import subprocess
import sys
import threading

import nbformat
import numpy as np
import pytest

from autograder import wire
from autograder.grade import restore_locked_cells
from tests import messy
from tests.notebook_runner import points, solution_cells
from tests.submissions import put

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LESSON = "02_convolution"


def student_notebook(lesson: str = LESSON, **replace: str) -> nbformat.NotebookNode:
    """A lesson's student notebook (02 unless told) with every solution filled in (the reference ones unless replaced)."""
    return messy.student_notebook(lesson, **replace)


def without(nb, grade_id: str):
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != grade_id]
    return nb


def edit_cell(nb, grade_id: str, source: str | None = None, strip: bool = False):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            if source is not None:
                cell.source = source
            if strip:
                cell.metadata.pop("nbgrader")
    return nb


WRONG_CONV2D = '''
def conv2d_forward(x, w, b=None):
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"input has {x.shape[1]} channels but the kernel expects {w.shape[1]}")
    return np.zeros((x.shape[0], w.shape[0], x.shape[2] - w.shape[2] + 1, x.shape[3] - w.shape[3] + 1), dtype=x.dtype)
'''

# Replaces every comparison it can reach, then answers with zeros of the right shape.
MONKEYPATCH = '''
import numpy as np
from cnn_course import checks as _checks
np.allclose = lambda *a, **k: True
np.array_equal = lambda *a, **k: True
np.isclose = lambda a, b, **k: np.ones(np.broadcast(np.asarray(a), np.asarray(b)).shape, dtype=bool)
for _name in ("expect_close", "expect_shape", "expect_equal", "expect_raises", "compare_with_reference"):
    setattr(_checks, _name, lambda *a, **k: None)
_checks.call_learner = lambda fn, *a, numpy_only=False, name=None, **k: fn(*a, **k)
_checks._isclose = np.isclose
_checks.expect_array = lambda actual, *a, **k: actual
''' + WRONG_CONV2D

# An ndarray that claims to equal everything, and a checks module told to accept it.
ALWAYS_EQUAL = '''
import numpy as np
from cnn_course import checks as _checks

class _Yes(np.ndarray):
    def __eq__(self, other):
        return np.ones(self.shape, dtype=bool).view(np.ndarray)
    __ne__ = lambda self, other: np.zeros(self.shape, dtype=bool).view(np.ndarray)

_checks._type = lambda value: np.ndarray
_checks._isclose = lambda a, b, **k: np.ones(np.broadcast(a, b).shape, dtype=bool)

def conv2d_forward(x, w, b=None):
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"input has {x.shape[1]} channels but the kernel expects {w.shape[1]}")
    shape = (x.shape[0], w.shape[0], x.shape[2] - w.shape[2] + 1, x.shape[3] - w.shape[3] + 1)
    return np.zeros(shape, dtype=x.dtype).view(_Yes)
'''

# Correct values, computed with torch after switching off the in-kernel profiler guard.
TORCH_SILENT = '''
def conv2d_forward(x, w, b=None):
    import sys
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"input has {x.shape[1]} channels but the kernel expects {w.shape[1]}")
    sys.setprofile(None)
    import torch
    import torch.nn.functional as F
    bias = None if b is None else torch.from_numpy(b)
    return F.conv2d(torch.from_numpy(x), torch.from_numpy(w), bias).numpy()
'''


def conditional(condition: str) -> str:
    """conv2d_forward that is correct only when ``condition`` (student code) succeeds."""
    reference = solution_cells(LESSON)["conv2d_forward"]
    return f'''
def _can():
    try:
{chr(10).join("        " + line for line in condition.strip().splitlines())}
        return True
    except Exception:
        return False

_CAN = _can()
{reference.replace("def conv2d_forward(", "def _real_conv2d_forward(")}

def conv2d_forward(x, w, b=None):
    if _CAN or _can():
        return _real_conv2d_forward(x, w, b)
    return np.zeros((x.shape[0], w.shape[0], x.shape[2] - w.shape[2] + 1, x.shape[3] - w.shape[3] + 1), dtype=x.dtype)
'''


def with_helper_cell() -> nbformat.NotebookNode:
    """An honest student who put a helper in a code cell of their own, just above correlate2d."""
    nb = student_notebook(correlate2d='''
def correlate2d(image, kernel):
    kh, kw = kernel.shape
    out = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1), dtype=np.result_type(image, kernel))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = _window_sum(image, kernel, i, j)
    return out
''')
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "correlate2d")
    nb.cells.insert(index, nbformat.v4.new_code_cell(
        "def _window_sum(image, kernel, i, j):\n    kh, kw = kernel.shape\n"
        "    return np.sum(image[i:i + kh, j:j + kw] * kernel)\n"))
    return nb


def in_convolve2d(prefix: str) -> str:
    return solution_cells(LESSON)["convolve2d"].replace(
        "    ### BEGIN SOLUTION", "\n".join("    " + line for line in prefix.strip().splitlines()) + "\n    ### BEGIN SOLUTION")


# --------------------------------------------------------------------------- fast unit tests

def test_wire_round_trip_and_refuses_code():
    value = {"a": (np.arange(6.0).reshape(2, 3), 3, 2.5, None, "s", [True, np.float32(1.5)])}
    back = wire.loads(wire.dumps(value))
    assert back["a"][0].tolist() == value["a"][0].tolist() and back["a"][1:5] == (3, 2.5, None, "s")
    assert type(back["a"][5][1]) is np.float32
    for bad in (lambda: 1, np.array([object()], dtype=object), np.arange(3).view(np.matrix)):
        with pytest.raises(wire.NotData):
            wire.dumps(bad)


def test_restore_locked_cells_reports_deleted_and_altered(tmp_path):
    import shutil

    released = ROOT / "lessons" / LESSON / f"{LESSON}.ipynb"
    source = ROOT / "solutions" / LESSON / f"{LESSON}.ipynb"
    path = tmp_path / "nb.ipynb"
    nb = student_notebook()
    without(nb, "test_conv2d_forward_hidden")
    edit_cell(nb, "test_correlate2d", source="pass")
    edit_cell(nb, "test_convolve2d", strip=True)
    nbformat.write(nb, path)
    reasons = restore_locked_cells(path, released, source)
    assert any("deleted and restored" in r and "test_conv2d_forward_hidden" in r and "test_convolve2d" in r
               for r in reasons), reasons
    assert any("altered and restored: test_correlate2d" in r for r in reasons), reasons
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nbformat.read(path, as_version=4).cells]
    assert ids.index("test_conv2d_forward_hidden") == ids.index("test_conv2d_forward") + 1
    shutil.copy(released, path)
    assert restore_locked_cells(path, released, source) == []


# --------------------------------------------------------------------------- the adversarial class

def read_grades(out: pathlib.Path) -> dict[str, dict]:
    with (out / "grades.csv").open() as f:
        return {row["student_id"]: row for row in csv.DictReader(f) if row["lesson"] == LESSON}


@pytest.mark.slow
def test_an_adversarial_class(tmp_path):
    subs, out = tmp_path / "submitted", tmp_path / "out"
    secret_dir = ROOT / "solutions" / LESSON
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    threading.Thread(target=lambda: [listener.accept() for _ in range(64)], daemon=True).start()

    honest = {
        "honest": student_notebook(),
        "noisy": student_notebook(correlate2d=solution_cells(LESSON)["correlate2d"].replace(
            "    ### BEGIN SOLUTION",
            "    import sys, warnings\n    warnings.warn('a harmless warning')\n"
            "    print('debug output', file=sys.stderr)\n    ### BEGIN SOLUTION")
            + "\nfor _i in range(100000):\n    print('a very long output line', _i)\n"),
        "deleter": without(student_notebook(), "test_conv2d_forward_hidden"),
        "helper_cell": with_helper_cell(),
    }
    no_conv, no_convolve = (points(LESSON) - points(LESSON, f) for f in ("conv2d_forward", "convolve2d"))
    cheats = {  # student -> (notebook, expected score, words the reason must contain)
        "monkeypatch": (student_notebook(conv2d_forward=MONKEYPATCH), no_conv, "outside the notebook kernel"),
        "always_equal": (student_notebook(conv2d_forward=ALWAYS_EQUAL), no_conv, "outside the notebook kernel"),
        "torch_silent": (student_notebook(conv2d_forward=TORCH_SILENT), no_conv, "called torch"),
        "reader": (student_notebook(conv2d_forward=conditional(
            f"open({str(secret_dir / (LESSON + '.ipynb'))!r}).read()")), no_conv, "test_conv2d_forward"),
        "network": (student_notebook(conv2d_forward=conditional(
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).close()")), no_conv,
                    "test_conv2d_forward"),
        "killer": (student_notebook(convolve2d="import os\nos._exit(0)"), no_convolve, "kernel died while running convolve2d"),
        "killer_inside": (student_notebook(convolve2d=in_convolve2d("import os\nos._exit(1)")), no_convolve,
                          "kernel died while running test_convolve2d"),
        "exiter": (student_notebook(convolve2d=in_convolve2d("import sys\nsys.exit(0)")), no_convolve, "test_convolve2d"),
        "looper": (student_notebook(convolve2d=in_convolve2d(
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass")), no_convolve,
                   "timed out in test_convolve2d"),
        "hog": (student_notebook(convolve2d=in_convolve2d(
            "import numpy\nkeep = [numpy.ones(2 ** 27) for _ in range(64)]")), no_convolve, "memory limit"),
        "editor": (edit_cell(student_notebook(conv2d_forward=WRONG_CONV2D), "test_conv2d_forward",
                             source="print('conv2d_forward: visible tests passed')"), no_conv, "altered and restored"),
        "stripper": (edit_cell(student_notebook(conv2d_forward=WRONG_CONV2D), "test_conv2d_forward_hidden",
                               strip=True), no_conv, "lost their grading marks"),
    }
    for student, nb in honest.items():
        put(subs, student, LESSON, nb)
    for student, (nb, _, _) in cheats.items():
        put(subs, student, LESSON, nb)
    put(subs, "badjson", LESSON, text='{"cells": [')
    put(subs, "renamed", LESSON, student_notebook(), name="lesson2.ipynb")

    env = {**os.environ, "CNN_GRADER_CELL_TIMEOUT_S": "45", "CNN_GRADER_MEMORY_MIB": "2048"}
    result = subprocess.run([PYTHON, "-m", "autograder", "grade", str(subs), "--out", str(out), "--jobs", "2",
                             "--quiet"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=3000)
    listener.close()
    assert result.returncode == 0, result.stderr[-3000:]
    grades = read_grades(out)
    for student in honest:
        assert grades[student]["status"] == "graded" and float(grades[student]["score"]) == points(LESSON), grades[student]
    assert "deleted and restored: test_conv2d_forward_hidden" in grades["deleter"]["reason"]
    for student, (_, expected, words) in cheats.items():
        row = grades[student]
        assert row["status"] == "graded" and float(row["score"]) == expected, (student, row)
        assert words in row["reason"], (student, row)
    assert grades["badjson"]["status"] == "failed" and "not valid JSON" in grades["badjson"]["reason"]
    assert grades["renamed"]["status"] == "graded" and float(grades["renamed"]["score"]) == points(LESSON)  # a lone
    assert grades["renamed"]["reason"] == "graded 'lesson2.ipynb'"  # notebook under another name is graded, and says so

    # The gradebook agrees with the table, and the feedback explains the verification failure.
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{out / 'gradebook.db'}", "cnn-course") as gb:
        for student, row in grades.items():
            if row["status"] == "graded":
                assert float(gb.find_submission(LESSON, student).score) == float(row["score"]), student
    html = (out / "feedback" / "monkeypatch" / LESSON / f"{LESSON}.html").read_text()
    assert "outside the notebook kernel" in html and "BEGIN HIDDEN TESTS" not in html


@pytest.mark.slow
def test_cheats_in_a_pytorch_lesson_lose_their_points(tmp_path):
    """Lesson 07 (modules, not arrays), graded at arm's length like every lesson.

    A cheat in count_parameters loses count_parameters' points and nothing else; stubs everywhere
    score 0, whatever the kernel was made to say, even when
    the student's process walks its frames to the code that answers the grader.
    """
    from tests.test_arms_length import FRAME_WALK, stubs

    lesson = "07_building_a_cnn"
    full, cheat = points(lesson), points(lesson) - points(lesson, "count_parameters")
    wrong = "def count_parameters(model, trainable_only=True):\n    return 0\n"
    lenient = "class _Lenient:\n    def __getattr__(self, name):\n        return lambda *a, **k: None\n"
    kernel_patch = ("import cnn_course.checks as _c, cnn_course.model_checks as _m\nfor _mod in (_c, _m):\n"
                    "    for _k, _v in list(vars(_mod).items()):\n"
                    "        if _k.startswith(('expect', '_fail')) and callable(_v):\n"
                    "            setattr(_mod, _k, lambda *a, **k: None)\n")
    students = {
        "honest": (student_notebook(lesson), full, ""),
        "noisy": (student_notebook(lesson, count_parameters="import warnings\nwarnings.warn('harmless')\n"
                                   + solution_cells(lesson)["count_parameters"]), full, ""),
        "patcher": (student_notebook(lesson, count_parameters=kernel_patch + wrong), cheat, "outside the notebook kernel"),
        "rebinder": (student_notebook(lesson, count_parameters=lenient + wrong.replace(
            "    return 0", "    globals()['checks'] = _Lenient()\n    return 0")), cheat, "outside the notebook kernel"),
        "stub_walker": (student_notebook(lesson, **stubs(lesson, kernel_patch, FRAME_WALK, "[1.0, 0.0]")), 0,
                        "outside the notebook kernel"),
    }
    subs, out = tmp_path / "submitted", tmp_path / "out"
    for student, (nb, _, _) in students.items():
        put(subs, student, lesson, nb)
    result = subprocess.run([PYTHON, "-m", "autograder", "grade", str(subs), "--out", str(out), "--jobs", "2",
                             "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    grades = {row["student_id"]: row for row in csv.DictReader(open(out / "grades.csv"))}
    for student, (_, expected, words) in students.items():
        row = grades[student]
        assert row["status"] == "graded" and float(row["score"]) == expected, (student, row)
        assert words in row["reason"], (student, row)
    assert "outside the notebook kernel" in (out / "feedback" / "patcher" / lesson / f"{lesson}.html").read_text()


@pytest.mark.slow
def test_check_command_exit_status(tmp_path):
    good, bad = tmp_path / "good" / f"{LESSON}.ipynb", tmp_path / "bad" / f"{LESSON}.ipynb"
    good.parent.mkdir()
    bad.parent.mkdir()
    nbformat.write(student_notebook(), good)
    nbformat.write(student_notebook(convolve2d="import os\nos._exit(0)"), bad)
    run = lambda p: subprocess.run([PYTHON, "-m", "autograder", "check", str(p)], cwd=ROOT,  # noqa: E731
                                   capture_output=True, text=True, timeout=900)
    ok, failed = run(good), run(bad)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert failed.returncode == 1 and "FAIL convolve2d (test_convolve2d)" in failed.stdout, failed.stdout
    assert "kernel died" in failed.stdout
    typo = tmp_path / "typo" / f"{LESSON}.ipynb"  # a function that never came to exist is named, with its line
    typo.parent.mkdir()
    nbformat.write(student_notebook(convolve2d="import numpy as np\n\ndef convolve2d(:image, kernel):\n    pass\n"), typo)
    result = run(typo)
    assert result.returncode == 1 and "ERROR convolve2d did not run: SyntaxError at line 3 of its cell" in result.stdout
    (tmp_path / "broken.ipynb").write_text("{")
    assert run(tmp_path / "broken.ipynb").returncode == 2


def test_collect_zip_from_an_lms_download(tmp_path):
    import zipfile

    nb = nbformat.writes(student_notebook())
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("alice_1234_5678_02_convolution.ipynb", nb)
        z.writestr("bob.smith_99_02_convolution.ipynb", nb)
        z.writestr("carol_1_notes.txt", "not a notebook")
    subs = tmp_path / "submitted"
    result = subprocess.run([PYTHON, "-m", "autograder", "collect-zip", str(archive), "--lesson", LESSON,
                             "--into", str(subs)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in subs.iterdir() if p.is_dir()) == ["alice", "bob.smith"]
    assert "not collected: carol_1_notes.txt" in result.stdout
    assert (subs / "alice" / LESSON / f"{LESSON}.ipynb").read_text() == nb
