"""autograder/limits.py: per-cell time limits fitted to the instructor's notebook, and ResilientExecute using them."""

import pathlib
import time

import nbformat
import pytest

from autograder import limits
from autograder.config import CELL_TIMEOUT_S, lesson_ids
from autograder.execute import ResilientExecute

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


@pytest.mark.parametrize("lesson", lesson_ids(ROOT))
def test_cell_keys_name_test_and_demo_cells_alike_in_source_release_and_windows_copy(lesson):
    source = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    release = nbformat.read(ROOT / "lessons" / lesson / f"{lesson}.ipynb", as_version=4)
    keys = [limits.cell_key(c) for c in source.cells]
    assert keys == [limits.cell_key(c) for c in release.cells]
    for cell, key in zip(source.cells, keys):
        meta = _meta(cell)
        if meta.get("grade") and not meta.get("solution"):
            assert key == meta["grade_id"]
        elif meta or cell.cell_type != "code":  # solution, setup and markdown cells keep the global limit
            assert key is None
        else:
            assert key.startswith("code:")
            cell.source = cell.source.replace("\n", "  \r\n")
            assert limits.cell_key(cell) == key


def test_limits_are_generous_and_capped():
    assert limits.limit("test_f", 0.01) == limits.TEST_FLOOR_S
    assert limits.limit("test_f", 2.0) == 20
    assert limits.limit("test_f", 1000.0) == CELL_TIMEOUT_S
    # a 1 s demo cell took over 3 s with CI's parallel graders: demo cells get room too
    assert limits.limit("code:abc", 0.01) == limits.DEMO_FLOOR_S >= 10
    assert limits.limit("code:abc", 5.0) == 20  # four times what it took


def test_resilient_execute_gives_each_cell_its_lessons_limit():
    executor = ResilientExecute(timeout=CELL_TIMEOUT_S, cell_limits={"02_convolution": {"test_f": 7}})
    executor._deadline = time.monotonic() + 1000
    test = nbformat.v4.new_code_cell("f()", metadata={"nbgrader": {"grade": True, "grade_id": "test_f"}})
    mine = nbformat.v4.new_code_cell("f()")
    executor.resources = {"nbgrader": {"assignment": "02_convolution"}}
    assert executor._get_timeout(test) == 7
    assert executor._get_timeout(mine) == CELL_TIMEOUT_S  # a cell the instructor's notebook does not have
    assert executor._get_timeout(None) == CELL_TIMEOUT_S  # nbclient's own requests (kernel_info)
    executor.resources = {"nbgrader": {"assignment": "03_padding_and_stride"}}
    assert executor._get_timeout(test) == CELL_TIMEOUT_S


def test_after_a_timeout_demo_cells_get_a_quarter_of_their_limit_and_test_cells_all_of_theirs():
    demo = nbformat.v4.new_code_cell("show(f())")
    executor = ResilientExecute(timeout=CELL_TIMEOUT_S, cell_limits={
        "02_convolution": {"test_f": 7, limits.cell_key(demo): 40}})
    executor._deadline = time.monotonic() + 1000
    executor.resources = {"nbgrader": {"assignment": "02_convolution"}}
    test = nbformat.v4.new_code_cell("f()", metadata={"nbgrader": {"grade": True, "grade_id": "test_f"}})
    executor._timed_out = False
    assert (executor._get_timeout(demo), executor._get_timeout(test)) == (40, 7)
    executor._timed_out = True  # a cell hung: the student's function loops, and every demo calling it will
    assert (executor._get_timeout(demo), executor._get_timeout(test)) == (10, 7)


@pytest.mark.slow
def test_measuring_lesson_02_limits_every_test_and_demo_cell(tmp_path):
    notebook = ROOT / "solutions" / "02_convolution" / "02_convolution.ipynb"
    fitted = limits.measure(notebook)
    keys = {limits.cell_key(c) for c in nbformat.read(notebook, as_version=4).cells} - {None}
    assert set(fitted) == keys
    assert all(limits.DEMO_FLOOR_S <= s <= CELL_TIMEOUT_S for k, s in fitted.items() if k.startswith("code:"))
    assert all(s >= limits.TEST_FLOOR_S for k, s in fitted.items() if not k.startswith("code:"))


@pytest.mark.slow
def test_an_interrupted_loop_keeps_the_kernel_and_a_deaf_one_is_restarted(tmp_path):
    from autograder import isolation

    cells = ["x = 41", "while True:\n    pass", "x += 1\nprint(x)",
             "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass", "print(x)"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    executor = ResilientExecute(timeout=3, allow_errors=True, interrupt_on_timeout=True, submission_timeout=120)
    try:
        executor.preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    finally:
        isolation.stop_zygote()
    looped, after, deaf, last = nb.cells[1:]
    assert looped.outputs[-1]["evalue"] == "timed out in cell 2 after 3 s; the kernel was interrupted"
    assert after.outputs[0]["text"] == "42\n"  # same kernel, same state
    assert deaf.outputs[-1]["evalue"] == "timed out in cell 4 after 3 s; the kernel was restarted for the next cells"
    assert last.outputs[-1]["ename"] == "NameError"  # a new kernel: x was never replayed


def test_a_measurement_is_kept_per_notebook_and_taken_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    source = tmp_path / "source" / "02_convolution"
    source.mkdir(parents=True)
    notebook = source / "02_convolution.ipynb"
    notebook.write_text((ROOT / "solutions" / "02_convolution" / "02_convolution.ipynb").read_text())
    runs = []
    monkeypatch.setattr(limits, "measure", lambda nb: runs.append(nb) or {"test_correlate2d": 5})
    for _ in range(2):
        assert limits.measure_lessons(tmp_path / "source", ["02_convolution"], tmp_path / "limits.json") == {
            "02_convolution": {"test_correlate2d": 5}}
    assert runs == [notebook]
    notebook.write_text(notebook.read_text().replace("Lesson 02", "Lesson two"))  # the instructor edited it
    limits.measure_lessons(tmp_path / "source", ["02_convolution"], tmp_path / "limits.json")
    assert runs == [notebook, notebook]
