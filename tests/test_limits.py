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
        elif meta.get("solution") and cell.cell_type == "code":
            assert key == f"solution:{meta['grade_id']}"
        elif meta or cell.cell_type != "code":  # setup and markdown cells keep the global limit
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


def test_solution_and_question_cells_get_a_generous_limit_of_their_own_that_a_timeout_does_not_cut():
    function = nbformat.v4.new_code_cell("def f():\n    return 1", metadata={"nbgrader": {
        "solution": True, "grade": False, "locked": False, "grade_id": "f"}})
    question = nbformat.v4.new_code_cell("q_f = f()", metadata={"nbgrader": {
        "solution": True, "grade": False, "locked": False, "grade_id": "q_f"}})
    test = nbformat.v4.new_code_cell("assert q_f == 1", metadata={"nbgrader": {"grade": True, "grade_id": "test_f"}})
    assert [limits.cell_key(c) for c in (function, question, test)] == ["solution:f", "solution:q_f", "test_f"]
    assert limits.TEST_FLOOR_S < limits.SOLUTION_FLOOR_S <= 15  # a hang costs 15 s per question cell, not 120 s
    assert limits.limit("solution:q_f", 0.001) == limits.SOLUTION_FLOOR_S
    assert limits.limit("solution:q_f", 3.0) == 30
    assert limits.limit("solution:q_f", 1000.0) == CELL_TIMEOUT_S
    executor = ResilientExecute(timeout=CELL_TIMEOUT_S, cell_limits={"01_fully_connected_limits": {
        "solution:f": 15, "solution:q_f": 15, "test_f": 5}})
    executor._deadline = time.monotonic() + 1000
    executor.resources = {"nbgrader": {"assignment": "01_fully_connected_limits"}}
    for timed_out in (False, True):  # points depend on a question cell: it keeps its whole limit after a hang
        executor._timed_out = timed_out
        assert [executor._get_timeout(c) for c in (function, question, test)] == [15, 15, 5]
    # after a kernel restart, the solution cells that ran cleanly are replayed as cells of their own: global limit
    replayed = nbformat.v4.new_code_cell(question.source)
    assert executor._get_timeout(replayed) == CELL_TIMEOUT_S


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
def test_measuring_lesson_01_limits_its_functions_and_questions():
    notebook = ROOT / "solutions" / "01_fully_connected_limits" / "01_fully_connected_limits.ipynb"
    fitted = limits.measure(notebook)
    solutions = {f"solution:{_meta(c)['grade_id']}" for c in nbformat.read(notebook, as_version=4).cells
                 if _meta(c).get("solution")}
    assert {"solution:dense_param_count", "solution:q_dense_params_224"} <= solutions <= set(fitted)
    # the instructor's take milliseconds: the floor, far under the global limit
    assert all(limits.SOLUTION_FLOOR_S <= fitted[k] < CELL_TIMEOUT_S for k in solutions), fitted


@pytest.mark.slow
def test_an_infinite_loop_in_lesson_01s_first_function_costs_a_minute_at_most_and_the_reference_keeps_its_marks(
        tmp_path):
    """The looper answers the questions as the instructor's notebook does, by calling its functions: the first,
    ``dense_param_count``, hangs, and so does ``q_dense_params_224``, which calls it (once 120 s: 262 s in all)."""
    import re

    from autograder import grade
    from autograder.collect import collect
    from autograder.config import PRELOAD
    from autograder.isolation import modules_imported_by, stop_zygote
    from tests import messy
    from tests.notebook_runner import questions, solution_cells

    lesson = "01_fully_connected_limits"
    subs, work, db = tmp_path / "class", tmp_path / "workspace", f"sqlite:///{tmp_path}/gradebook.db"
    calls = {q: solution_cells(lesson)[q] for q in questions(lesson)}
    messy.put(subs, "reference", lesson, "clean", **calls)
    messy.put(subs, "looper", lesson, "clean", **{**calls, **messy.looping(lesson)})
    grade.prepare_workspace(ROOT, work, [lesson], db)
    grade.register_students(db, ["looper", "reference"])
    source = work / "source" / lesson / f"{lesson}.ipynb"
    preload = ["ipykernel.kernelapp", *modules_imported_by([source])] if PRELOAD else None
    # The whole path: the kernel's run (nbgrader's autograde with ResilientExecute), then verification
    # (autograder/verify.py), which runs the student's solution cells again under the same fitted limits.
    grade._init_worker(work, db, [str(subs)], True, preload)
    took = {}
    try:
        for sub in collect(subs, [lesson]):
            start = time.monotonic()
            graded = grade.grade_one(sub)
            took[sub.student_id] = (time.monotonic() - start, graded)
    finally:
        stop_zygote()
    (loop_s, loop), (_, ref) = took["looper"], took["reference"]
    assert ref.status == "graded" and ref.score == ref.max_score and ref.reason == "", ref
    assert loop_s <= 60, (loop_s, loop.reason)
    hung = re.search(r"timed out in q_dense_params_224 after (\d+) s", loop.reason)
    assert hung and limits.SOLUTION_FLOOR_S <= int(hung.group(1)) < CELL_TIMEOUT_S, loop.reason
    assert loop.score == loop.max_score - 3, loop  # dense_param_count's two tests and its question's


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
