"""Verification fails closed: nothing a submission can reach decides, delays or inflates a grade.

Each test is one class of hole, tried as an adversary would with stub or wrong functions, beside the
honest reference in the same conditions (which must keep every point). The whole ``grade`` path is in
tests/test_fail_closed_class.py.
"""

import pathlib
import resource
import shutil
import threading
import time

import pytest

from autograder import verify as verification
from tests.notebook_runner import solution_cells
from tests.test_arms_length import ROOT, stubs, verdicts_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def zygote():
    from autograder import isolation

    z = isolation.start_zygote(["numpy", "torch", "torch._dynamo", "matplotlib.pyplot", "cnn_course.checks"])
    yield z
    isolation.stop_zygote()


def lesson_files(tmp_path: pathlib.Path, lesson: str) -> pathlib.Path:
    """A copy of the lesson's folder (its figures), as a submission folder holds it."""
    folder = tmp_path / "submission"
    shutil.copytree(ROOT / "solutions" / lesson, folder, ignore=shutil.ignore_patterns("*.ipynb"))
    return folder


def within(seconds: float, fn):
    """``fn()``'s value, or a failure if it has not returned after ``seconds`` (a hang must not hang the test run)."""
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("value", fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert "value" in box, f"still waiting after {seconds} s"
    return box["value"]


@pytest.mark.parametrize("shadow", ["numpy.py", "autograder/__init__.py", "cnn_course/__init__.py"])
def test_a_file_beside_the_notebook_cannot_switch_verification_off(tmp_path, shadow):
    """A module the verification process imports at start-up, uploaded beside the notebook, used to end that
    process before it was ready, and the kernel's (forgeable) scores were kept: now it shadows nothing, and
    stub functions score nothing whatever else is in the folder."""
    lesson = "02_convolution"
    folder = lesson_files(tmp_path, lesson)
    (folder / shadow).parent.mkdir(parents=True, exist_ok=True)
    (folder / shadow).write_text("raise SystemExit('shadowed')\n")
    honest = verdicts_for(lesson, {}, folder)
    assert all(passed for passed, _ in honest.values()), honest
    cheat = verdicts_for(lesson, stubs(lesson, "", "", "0"), folder)
    assert not [gid for gid, (passed, _) in cheat.items() if passed], cheat


def test_a_verification_process_that_cannot_start_fails_every_test_it_was_to_decide(tmp_path, monkeypatch):
    """Fail closed: whatever stops the arm's-length process, its tests fail with a true reason (never skipped)."""
    lesson = "02_convolution"

    def refuse(self):
        raise verification.SetupFailed("the process ended (exit status 1)")

    monkeypatch.setattr(verification.Runner, "start", refuse)
    verdicts = verdicts_for(lesson, {})
    assert verdicts and all(not passed and verification.NOT_VERIFIED in message
                            for passed, message in verdicts.values()), verdicts


BUILTINS_FORGED = {  # the student's own int/tuple/bool: on the old grader, the hidden tests' own `int(...)` used them
    "q_first_output": "int = lambda *a, **k: 7\nq_first_output = 7",
    "q_flat_white": "q_flat_white = 7",
    "q_output_size": "tuple = lambda *a, **k: (1, 1)\nq_output_size = (1, 1)",
    "q_layer_output_shape": "q_layer_output_shape = (1, 1)",
    "q_relu_keeps_equality": "bool = lambda *a, **k: True\nlen = lambda *a: 0\nrange = lambda *a: []\n"
                             "q_relu_keeps_equality = True",
}


def test_only_graded_names_cross_into_the_tests():
    """Test cells see the graded functions and q_* answers, nothing else: a student's `int` stays theirs."""
    lesson = "02_convolution"
    verdicts = verdicts_for(lesson, {**stubs(lesson, "", "", "0"), **BUILTINS_FORGED})
    assert not [gid for gid, (passed, _) in verdicts.items() if passed], verdicts
    helper = "def _helper(x):\n    return x\n\nlen = _helper\n"  # an honest notebook with odd names keeps its points
    honest = verdicts_for(lesson, {"correlate2d": helper + solution_cells(lesson)["correlate2d"]})
    assert all(passed for passed, _ in honest.values()), honest


FORGED_CLOCK = '''
import sys
_runner = sys.modules["__main__"]  # the verification process: slow its clock down while the call runs
_ticks = [0.0]
def _slow_clock():
    _ticks[0] += 1e-6
    return _ticks[0]
for _name in list(vars(_runner)):
    if "perf_counter" in _name:
        setattr(_runner, _name, _slow_clock)
import time
time.perf_counter = _slow_clock
time.monotonic = _slow_clock

def conv2d_fast(x, w, b=None, stride=1, padding=0):
    return conv2d(x, w, b, stride=stride, padding=padding)  # correct, and as slow as a loop
'''


def test_speed_is_timed_by_the_grader_not_by_the_students_process():
    lesson = "03_padding_and_stride"
    verdicts = verdicts_for(lesson, {"conv2d_fast": FORGED_CLOCK})
    assert not verdicts["test_conv2d_fast_speed"][0], verdicts["test_conv2d_fast_speed"]
    assert "faster than a loop" in verdicts["test_conv2d_fast_speed"][1]
    others = {gid: v for gid, v in verdicts.items() if gid.startswith("test_conv2d_fast") and gid != "test_conv2d_fast_speed"}
    assert others and all(passed for passed, _ in others.values()), others  # a correct loop keeps the rest


STALL = '''
import os, struct, sys, time
def correlate2d(image, kernel):
    if "ipykernel" not in sys.modules:  # only in the verification process: begin a reply, never finish it
        os.write(4, struct.pack("<Q", 4096) + b"PK\\x03\\x04")
        time.sleep(3600)
    return 0
'''


FLOOD = '''
import os, sys
def correlate2d(image, kernel):
    while "ipykernel" not in sys.modules:  # only in the verification process: stderr, as fast as it goes
        os.write(2, b"x" * 65536)
    return 0
'''


@pytest.mark.parametrize("correlate2d", [STALL, FLOOD], ids=["a reply begun and never finished", "a stderr flood"])
def test_a_stalling_process_costs_only_its_own_tests_and_bounded_time(monkeypatch, correlate2d):
    """No read on the channel without a deadline: a stalled reply (or a process that floods stderr instead of
    replying) fails the tests that waited for it, in bounded time, and the verification of the other functions
    goes on, in a process started again."""
    lesson = "02_convolution"
    monkeypatch.setattr(verification, "SUBMISSION_TIMEOUT_S", 120)
    start = time.monotonic()
    verdicts = within(150, lambda: verdicts_for(lesson, {"correlate2d": correlate2d}, timeout=2))
    assert time.monotonic() - start < 100
    mine = {gid: v for gid, v in verdicts.items() if gid.startswith("test_correlate2d")}
    assert mine and not any(passed for passed, _ in mine.values()), mine
    assert verdicts["test_compose_kernels"][0], verdicts["test_compose_kernels"]


BOMB = '''
import io, os, struct, sys, zipfile, json
import numpy as np
def correlate2d(image, kernel):
    if "ipykernel" not in sys.modules:  # reply with 0.5 MiB on the wire that inflates to 512 MiB in the grader
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            header = json.dumps({"d": [["result", {"a": 0}], ["args", {"l": []}], ["kwargs", {"l": []}]]}).encode()
            head = io.BytesIO()
            np.save(head, np.frombuffer(header, np.uint8))
            z.writestr("header.npy", head.getvalue())
            with z.open("a0.npy", "w", force_zip64=True) as f:
                f.write(b"\\x93NUMPY\\x01\\x00" + struct.pack("<H", 118)
                        + b"{'descr': '<f8', 'fortran_order': False, 'shape': (67108864,), }".ljust(117) + b"\\n")
                zeros = bytes(1 << 24)
                for _ in range(32):
                    f.write(zeros)
        data = buf.getvalue()
        os.write(4, struct.pack("<Q", len(data)) + data)
    return image[:image.shape[0] - kernel.shape[0] + 1, :image.shape[1] - kernel.shape[1] + 1] * 0
'''


def test_a_reply_that_would_inflate_is_refused_before_it_grows_the_grader():
    lesson = "02_convolution"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, the peak so far
    verdicts = verdicts_for(lesson, {"correlate2d": BOMB})
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 300, f"the grader grew by {grown_mib:.0f} MiB"
    mine = {gid: v for gid, v in verdicts.items() if gid.startswith("test_correlate2d")}
    assert mine and not any(passed for passed, _ in mine.values()), mine


def test_a_submissions_replies_have_a_budget_in_all(monkeypatch):
    """Each reply is at most wire.MAX_MESSAGE, and all of a submission's together at most MAX_SUBMISSION_BYTES:
    past it, the tests still waiting fail, with the reason."""
    lesson = "02_convolution"
    monkeypatch.setattr(verification, "MAX_SUBMISSION_BYTES", 64 << 10)
    verdicts = verdicts_for(lesson, {})
    late = {gid: message for gid, (passed, message) in verdicts.items() if "went past 0 MiB in all" in message}
    assert late and all(not verdicts[gid][0] for gid in late), verdicts
    assert any(passed for passed, _ in verdicts.values())  # the first replies fitted


def test_a_notebook_keeps_at_most_its_share_of_output_however_many_cells_print(tmp_path):
    """Each cell keeps 4 MiB of output as it arrives, the whole notebook 32 MiB: a student who adds cells, each
    printing just under a cell's share, cannot grow the grading worker past the notebook's."""
    import nbformat

    from autograder.execute import MAX_CELL_OUTPUT, MAX_NOTEBOOK_OUTPUT, ResilientExecute

    chunk = (MAX_CELL_OUTPUT - (64 << 10)) // 4
    cells = [nbformat.v4.new_code_cell(f"for _ in range(4):\n    print('x' * {chunk})") for _ in range(12)]
    nb = nbformat.v4.new_notebook(cells=cells)
    ResilientExecute(timeout=60).preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    kept = [sum(len(o.get("text", "")) for o in cell.outputs) for cell in nb.cells]
    assert all(k <= MAX_CELL_OUTPUT + 4096 for k in kept), kept
    assert MAX_NOTEBOOK_OUTPUT - MAX_CELL_OUTPUT <= sum(kept) <= MAX_NOTEBOOK_OUTPUT + 4096, sum(kept)
    assert "[output cut" in nb.cells[-1].outputs[-1].get("text", ""), nb.cells[-1].outputs[-1]
