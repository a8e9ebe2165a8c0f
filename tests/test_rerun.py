"""The PyTorch lessons' re-run outside the kernel (autograder/rerun.py): honest work keeps every
test, cheats that work inside the kernel lose the tests they touched."""

import pathlib

import nbformat
import pytest

from autograder.verify import rerun
from tests.notebook_runner import graded_test_cells

ROOT = pathlib.Path(__file__).resolve().parent.parent
TORCH_LESSONS = ["06_receptive_fields", "07_building_a_cnn", "08_cifar10_on_gpu", "09_inside_the_cnn"]
LESSON = "07_building_a_cnn"
WRONG_COUNT = "def count_parameters(model, trainable_only=True):\n    return 0\n"


def notebooks(lesson: str, **replace: str):
    """(instructor notebook, a student's notebook with the reference solutions except ``replace``)."""
    source = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    student = nbformat.from_dict(source)
    for cell in student.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in replace:
            cell.source = replace[gid]
    return source, student


@pytest.fixture(autouse=True)
def zygote(request):
    """Re-runs fork from a warm zygote, as in a grading worker (tests marked ``no_zygote`` start a process)."""
    from autograder import execute

    if request.node.get_closest_marker("no_zygote"):
        yield None
        return
    z = execute.start_zygote(["numpy", "torch", "torch._dynamo", "matplotlib.pyplot", "cnn_course.checks"])
    yield z
    execute.stop_zygote()


def alternatives(lesson: str) -> dict:
    import importlib

    return importlib.import_module(f"tests.lessons.test_{lesson}").ALTERNATIVES


def verdicts_for(lesson: str, **replace: str) -> dict:
    source, student = notebooks(lesson, **replace)
    tests = list(graded_test_cells(lesson))
    return {gid: (v.passed, v.message) for gid, v in
            rerun(source, student, tests, ROOT / "solutions" / lesson, hide=[], timeout=60).items()}


@pytest.mark.slow
@pytest.mark.parametrize("lesson, label", [(x, None) for x in TORCH_LESSONS]
                         + [(x, a) for x in TORCH_LESSONS for a in sorted(alternatives(x))])
def test_correct_solutions_pass_every_test_when_run_again(lesson, label):
    """The reference, and each lesson's alternative correct implementations (tests/lessons/)."""
    verdicts = verdicts_for(lesson, **(alternatives(lesson)[label] if label else {}))
    unmeasurable = {"test_cifar10_checkpoint"}  # needs CIFAR-10's test set, which this machine lacks
    failed = {gid: message for gid, (passed, message) in verdicts.items() if not passed and gid not in unmeasurable}
    assert not failed
    assert set(verdicts) == set(graded_test_cells(lesson))


def cheat(body: str) -> str:
    return f"def count_parameters(model, trainable_only=True):\n{body}\n    return 0\n"


@pytest.mark.parametrize("name, solution, words", [
    ("patches a check at the top of the cell", "from cnn_course import checks as _c\n_c.expect_equal = lambda *a, **k: None\n"
     + WRONG_COUNT, "replaced cnn_course.checks.expect_equal"),
    ("patches the failure helper when called", cheat("    import cnn_course.checks as c\n    c._fail = lambda *a, **k: None"),
     "replaced cnn_course.checks._fail"),
    ("patches a builtin", "import builtins\nbuiltins.isinstance = lambda *a: True\n" + WRONG_COUNT,
     "replaced builtins.isinstance"),
    ("patches torch.Tensor", "import torch\ntorch.Tensor.__eq__ = lambda *a: True\n" + WRONG_COUNT,
     "replaced torch.Tensor.__eq__"),
    ("rebinds the checks while the test runs", cheat(
        "    class _Lenient:\n        def __getattr__(self, name):\n            return lambda *a, **k: None\n"
        "    globals()['checks'] = _Lenient()"), "rebound checks"),
    ("rewrites a check's code", cheat("    import cnn_course.checks as c\n"
                                      "    c.expect_equal.__code__ = (lambda *a, **k: None).__code__"),
     "rewrote __code__"),
    ("uses ctypes", cheat("    import ctypes\n    ctypes.string_at(id(model), 8)"), "ctypes"),
    ("forges a verdict", cheat("    import os\n    for fd in range(3, 20):\n        try:\n"
                               "            os.write(fd, b'x test test_count_parameters 1 \\n')\n"
                               "        except OSError:\n            pass"), ""),
])
def test_cheats_lose_the_tests_they_touch(name, solution, words):
    verdicts = verdicts_for(LESSON, count_parameters=solution)
    for gid in ("test_count_parameters", "test_count_parameters_hidden"):
        passed, message = verdicts[gid]
        assert not passed and words in message, (name, gid, message)
    assert verdicts["test_build_seed_cnn_hidden"][0]  # tests that ran before the cheat keep their verdict


def test_rebinding_at_the_top_of_a_cell_is_undone_so_the_real_checks_decide():
    lenient = "class _Lenient:\n    def __getattr__(self, name):\n        return lambda *a, **k: None\nchecks = _Lenient()\n"
    verdicts = verdicts_for(LESSON, count_parameters=lenient + WRONG_COUNT)
    passed, message = verdicts["test_count_parameters"]
    assert not passed and "count_parameters(Linear(3, 2))" in message, message


def test_a_cell_that_ends_the_process_costs_only_its_own_tests():
    verdicts = verdicts_for(LESSON, count_parameters="import os\nos._exit(0)")
    assert not verdicts["test_count_parameters"][0]
    others = [gid for gid in graded_test_cells(LESSON) if "count_parameters" not in gid]
    assert all(verdicts[gid][0] for gid in others), verdicts


def test_student_added_helper_cells_run_before_their_solution():
    source, student = notebooks(LESSON)
    index = next(i for i, c in enumerate(student.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "count_parameters")
    student.cells.insert(index, nbformat.v4.new_code_cell("def _numel_sum(ps):\n    return sum(p.numel() for p in ps)"))
    student.cells[index + 1].source = ("def count_parameters(model, trainable_only=True):\n    return _numel_sum(\n"
                                       "        p for p in model.parameters() if p.requires_grad or not trainable_only)\n")
    release = nbformat.read(ROOT / "lessons" / LESSON / f"{LESSON}.ipynb", as_version=4)
    verdicts = rerun(source, student, ["test_count_parameters", "test_count_parameters_hidden"],
                     ROOT / "solutions" / LESSON, hide=[], timeout=60, release_nb=release)
    assert all(v.passed for v in verdicts.values()), verdicts


@pytest.mark.no_zygote
def test_without_a_zygote_the_rerun_starts_its_own_process():
    assert all(passed for passed, _ in verdicts_for("06_receptive_fields").values())
    patched = "from cnn_course import checks as _c\n_c.expect_equal = lambda *a, **k: None\n" + WRONG_COUNT
    passed, message = verdicts_for(LESSON, count_parameters=patched)["test_count_parameters_hidden"]
    assert not passed and "replaced cnn_course.checks.expect_equal" in message
    passed, message = verdicts_for(LESSON, count_parameters="import os\nos._exit(0)")["test_layer_shapes_hidden"]
    assert passed, message
