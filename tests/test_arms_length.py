"""Student code at arm's length in every lesson (autograder/verify.py, runner.py, objects.py, wire.py).

The tests that decide run in this process with the instructor's code; the student's cells
run in a sandboxed process; only data comes back. Every cheat below goes with stub
functions (they return nonsense), so each must score 0 however it tries; honest,
alternative and wrong-but-plausible solutions must score what they deserve.
"""

import ast
import pathlib

import nbformat
import numpy as np
import pytest
import torch
from torch import nn

from autograder import objects, wire
from autograder.verify import verify
from tests.notebook_runner import graded_test_cells, solution_cells

ROOT = pathlib.Path(__file__).resolve().parent.parent
TORCH_LESSONS = ["06_receptive_fields", "07_building_a_cnn", "08_cifar10_on_gpu", "09_inside_the_cnn"]
UNMEASURABLE = {"test_cifar10_checkpoint"}  # needs CIFAR-10's test set, which CI lacks


# --------------------------------------------------------------------------- the parts on their own

def test_tensors_cross_as_arrays_with_their_dtype():
    message = {"t": torch.arange(6, dtype=torch.int16).reshape(2, 3), "g": torch.ones(2, requires_grad=True) * 2,
               "n": [np.float32(1.5), (torch.tensor(True),)]}
    back = wire.loads(wire.dumps(message))
    assert type(back["t"]) is torch.Tensor and back["t"].dtype == torch.int16 and back["t"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert not back["g"].requires_grad and back["g"].tolist() == [2.0, 2.0]
    assert back["n"][1][0].dtype == torch.bool

    class Pretender(torch.Tensor):  # a subclass crosses as its values, nothing more
        def __eq__(self, other):
            return True

    assert type(wire.loads(wire.dumps(torch.zeros(2).as_subclass(Pretender)))) is torch.Tensor
    with pytest.raises(wire.NotData):
        wire.dumps(nn.Linear(2, 2))

    class Agreeable(tuple):  # an answer to a question ("a shape tuple") crosses as the plain tuple of its items
        def __eq__(self, other):
            return True

        def __iter__(self):
            return iter(())

    back = wire.loads(wire.dumps([torch.Size([2, 3]), Agreeable((1, 2))]))
    assert [type(v) for v in back] == [tuple, tuple] and back == [(2, 3), (1, 2)]


def test_what_the_students_process_did_to_a_model_shows_on_the_graders():
    torch.manual_seed(0)
    theirs = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    mine = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    mine.load_state_dict(theirs.state_dict())
    theirs[1].register_forward_hook(lambda *a: None)  # a hook left behind, a mode switched, weights trained
    theirs.eval()
    with torch.no_grad():
        theirs[0].weight.add_(1.0)
    theirs[0].bias.requires_grad_(False)
    report = wire.loads(wire.dumps(objects.report(theirs)))
    objects.apply(mine, report)
    from cnn_course import model_checks

    assert model_checks.hook_count(mine) == 1 and not mine.training and not mine[1].training
    assert torch.equal(mine[0].weight, theirs[0].weight) and not mine[0].bias.requires_grad
    # Only what the grader's own object has, with the same types and shapes, is taken.
    objects.apply(mine, {"kind": "module", "state": {"0.weight": torch.zeros(3), "nope": torch.zeros(1)},
                         "modules": [[n, type(m).__name__, {"training": "yes", "forward": 1}, [0, 0, 0, 0]]
                                     for n, m in mine.named_modules()]})
    assert mine.training is False and callable(mine.forward) and "nope" not in mine.state_dict()
    assert mine[0].weight.shape == (3,)  # a tensor resized there is resized here (expect_unchanged sees it)
    before = model_checks.snapshot(mine)
    theirs[1] = nn.Identity()  # a layer replaced there shows as a structure change here
    objects.apply(mine, wire.loads(wire.dumps(objects.report(theirs))))
    with pytest.raises(model_checks.CheckFailed, match="structure"):
        model_checks.expect_unchanged(mine, before, "the call")


def test_classes_the_test_defines_are_sent_by_name_with_their_source():
    source = "class _Spy(nn.Module):\n    def forward(self, x):\n        return x\n\n\n_spy = _Spy()\nprint(_spy)\n"
    defs = objects.definitions(source)
    assert "class _Spy" in defs and "print" not in defs
    namespace = {"__name__": "__main__", "nn": nn}
    exec(source, namespace)
    data = objects.dumps_call((namespace["_spy"],), {}, {})
    theirs = {"nn": nn, "__name__": "test"}
    exec(defs, theirs)
    (spy,), _ = objects.loads_call(data, theirs, {}, [])
    assert type(spy) is theirs["_Spy"]
    with pytest.raises(wire.NotData):
        objects.dumps_call((lambda: 0,), {}, {})


# --------------------------------------------------------------------------- whole lessons

@pytest.fixture(scope="module", autouse=True)
def zygote():
    """Warm processes fork from a zygote, as in a grading worker."""
    from autograder import isolation

    z = isolation.start_zygote(["numpy", "torch", "torch._dynamo", "matplotlib.pyplot", "cnn_course.checks"])
    yield z
    isolation.stop_zygote()


def verdicts_for(lesson: str, replace: dict[str, str], files_from: pathlib.Path | None = None,
                 tests: list[str] | None = None, timeout: float = 60) -> dict[str, tuple[bool, str]]:
    source = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    student = nbformat.from_dict(source)
    for cell in student.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in replace:
            cell.source = replace[gid]
    tests = tests or list(graded_test_cells(lesson))
    verdicts = verify(source, student, lesson, tests, files_from or ROOT / "solutions" / lesson, hide=[], timeout=timeout)
    assert set(verdicts) == set(tests)
    return {gid: (v.passed, v.message) for gid, v in verdicts.items() if gid not in UNMEASURABLE or files_from}


def cases(lesson: str):
    import importlib

    return importlib.import_module(f"tests.lessons.test_{lesson}")


@pytest.mark.slow
@pytest.mark.parametrize("lesson", TORCH_LESSONS)
def test_honest_alternative_and_wrong_solutions_score_what_they_deserve(lesson):
    """The reference and every alternative pass at arm's length; every mutant (tests/lessons/) fails its hidden
    tests there too. Mutants of different functions share a notebook: each function's tests call only it."""
    for label, replace in [("reference", {}), *cases(lesson).ALTERNATIVES.items()]:
        failed = {gid: message for gid, (passed, message) in verdicts_for(lesson, replace).items() if not passed}
        assert not failed, (label, failed)
    mutants = cases(lesson).MUTANTS
    for k in range(max(len(m) for m in mutants.values())):
        chosen = {f: list(m.items())[k] for f, m in mutants.items() if k < len(m)}
        verdicts = verdicts_for(lesson, {f: source for f, (_, source) in chosen.items()})
        for f, (label, _) in chosen.items():
            hidden = [passed for gid, (passed, _) in verdicts.items() if gid.startswith(f"test_{f}") and "hidden" in gid]
            assert hidden and not any(hidden), f"{lesson}: mutant {label!r} of {f} passed"


FRAME_WALK = '''
import sys
_f = sys._getframe()
while _f is not None:  # up to the runner: forge replies on its channel with its own writer
    _wire, _fd = _f.f_globals.get("wire") or _f.f_locals.get("wire"), _f.f_locals.get("out_fd")
    if _wire is not None and isinstance(_fd, int):
        for _ in range(3):
            _wire.send(_fd, {"result": True, "args": [], "kwargs": {}, "seconds": 0.0})
    _f = _f.f_back
'''
THREAD = '''
import threading, time
import cnn_course.checks as _c
def _flip():
    _keep = dict(vars(_c))
    while True:  # patch every check, and put it back a moment later
        for _k, _v in list(_keep.items()):
            if callable(_v) and not isinstance(_v, type):
                setattr(_c, _k, lambda *a, **k: None)
        time.sleep(0.001)
        vars(_c).update(_keep)
threading.Thread(target=_flip, daemon=True).start()
'''
TRACE = '''
import sys, threading
def _tracer(frame, event, arg):
    if event == "return" and frame.f_code.co_name.startswith(("expect", "_fail", "describe")):
        frame.f_locals.clear()
    return _tracer
sys.settrace(_tracer)
threading.settrace(_tracer)
sys.setprofile(lambda frame, event, arg: None)
'''
SIGNALS = '''
import atexit, os, signal
def _forge(*a):
    for _fd in range(1, 30):
        try:
            os.write(_fd, b"x" * 64)
        except OSError:
            pass
for _s in (signal.SIGTERM, signal.SIGALRM, signal.SIGUSR1, signal.SIGINT):
    signal.signal(_s, _forge)
signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)
atexit.register(_forge)
'''
FINALIZER = '''
import gc, os, struct
class _Ghost:
    def __del__(self):
        for _fd in range(3, 30):
            try:
                os.write(_fd, struct.pack("<Q", 12) + b"PK\\x03\\x04forged")
            except OSError:
                pass
        _g = _Ghost(); _g.me = _g  # and again, at the next collection
for _ in range(50):
    _g = _Ghost(); _g.me = _g
del _g
gc.set_threshold(1, 1, 1)
'''
FLOOD = '''
import os, struct
for _fd in range(3, 30):
    try:
        os.write(_fd, struct.pack("<Q", 2 ** 40))
        os.write(_fd, b"\\0" * (1 << 16))
    except OSError:
        pass
'''
PRETEND = '''
import numpy as _np, torch as _torch
class _Anything(_torch.Tensor):
    def __eq__(self, other):
        return True
    __ne__ = lambda self, other: False
class _ArrayLike:
    shape, dtype = (1,), _np.float64
    def __array__(self, *a, **k):
        return _np.zeros(1)
    def __eq__(self, other):
        return True
_PRETENDERS = [_torch.zeros(1).as_subclass(_Anything), _ArrayLike()]
'''
READER = f'''
import glob
_found = []
for _pattern in ("{ROOT}/solutions/*/*.ipynb", "{ROOT}/tests/*.py", "/tmp/**/*.ipynb", "/tmp/**/gradebook.db", "../*/*"):
    for _path in glob.glob(_pattern, recursive=True):
        try:
            _found.append(open(_path, "rb").read(100))
        except OSError:
            pass
raise RuntimeError(f"found {{len(_found)}} files")
'''
CHEATS = {"frame walk": ("", FRAME_WALK), "thread": (THREAD, ""), "trace": (TRACE, ""), "signals": (SIGNALS, ""),
          "finalizer": (FINALIZER, ""), "flood": ("", FLOOD), "pretender": (PRETEND, ""), "reader": ("", READER)}


def stubs(lesson: str, top: str, body: str, result: str) -> dict[str, str]:
    """Every graded function of the lesson as a stub (``body`` then ``return result``); ``top`` before the first."""
    out, placed = {}, False
    for gid, source in solution_cells(lesson).items():
        if gid.startswith("q_"):  # an answer to a question, not a function: left unanswered
            out[gid] = f"{gid} = None"
            continue
        fn = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef))
        code = f"def {fn.name}({ast.unparse(fn.args)}):\n" + "".join(
            "    " + line + "\n" for line in (body.strip().splitlines() + [f"return {result}"]))
        out[gid] = ("" if placed else top) + "\n" + code
        placed = True
    return out


@pytest.mark.slow
@pytest.mark.parametrize("lesson", TORCH_LESSONS)
@pytest.mark.parametrize("cheat", sorted(CHEATS))
def test_every_cheat_with_stub_functions_scores_nothing(lesson, cheat, zygote):
    top, body = CHEATS[cheat]
    result = "_PRETENDERS[0]" if cheat == "pretender" else "(0, 0)"
    verdicts = verdicts_for(lesson, stubs(lesson, top, body, result))
    passed = [gid for gid, (ok, _) in verdicts.items() if ok]
    assert not passed, (cheat, passed)
    if cheat == "reader" and zygote.strict:  # the solutions, tests, other students' notebooks are not there
        assert all("found 0 files" in message for gid, (_, message) in verdicts.items()
                   if not gid.startswith("test_q_")), verdicts  # questions are left unanswered by stubs()


ANSWER_KEY = {  # a correct function that hands part of the work to the course's own package
    "03_padding_and_stride": ("conv_output_size", "from cnn_course import explorers\n"
                              "return explorers.conv_geometry(size, kernel_size, padding, stride, dilation).output_size"),
    "06_receptive_fields": ("receptive_fields", "from cnn_course import receptive_explorer\n"
                            "receptive_explorer.output_sizes([{'kernel': 1}], 4)"),
    "07_building_a_cnn": ("count_parameters", "from cnn_course import cifar\ncifar.count_parameters(model)"),
    "08_cifar10_on_gpu": ("build_model", "from cnn_course import cifar\nreturn cifar.reference_model(num_classes, width)"),
    "09_inside_the_cnn": ("feature_maps", "from cnn_course import cifar\ncifar.normalize(x[:0].byte())"),
}


@pytest.mark.slow
@pytest.mark.parametrize("lesson", ["03_padding_and_stride", *TORCH_LESSONS])
def test_the_courses_own_package_is_not_an_answer_key(lesson):
    function, call = ANSWER_KEY[lesson]
    solution = solution_cells(lesson)[function]
    indent = "    " + "\n    ".join(call.splitlines()) + "\n"
    head, _, tail = solution.partition("    ### BEGIN SOLUTION\n")
    verdicts = verdicts_for(lesson, {function: head + indent + "    ### BEGIN SOLUTION\n" + tail})
    mine = {gid: v for gid, v in verdicts.items() if gid.startswith(f"test_{function}")}
    assert mine and all(not ok and "not an answer key" in message for ok, message in mine.values()), mine


@pytest.mark.slow
def test_lesson_08s_checkpoint_is_run_where_the_labels_are_not(tmp_path, monkeypatch):
    """The student's process loads the checkpoint beside the notebook and predicts the test images it is sent;
    the grader, which alone reads the labels, scores the predictions."""
    from cnn_course import cifar
    from tests.lessons.test_08_cifar10_on_gpu import _labelled_test_set

    torch.manual_seed(0)
    model = cifar.reference_model()
    monkeypatch.setenv(cifar.ENV_DATA, str(_labelled_test_set(tmp_path, model)))
    folder = tmp_path / "student"
    folder.mkdir()
    test = ["test_cifar10_checkpoint"]
    lesson = "08_cifar10_on_gpu"
    torch.save(model.state_dict(), folder / cifar.CHECKPOINT)
    assert verdicts_for(lesson, {}, folder, test)[test[0]] == (True, "")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["fc.weight"] = -state["fc.weight"]  # now it predicts the least likely class
    torch.save(state, folder / cifar.CHECKPOINT)
    passed, message = verdicts_for(lesson, {}, folder, test)[test[0]]
    assert not passed and "90% is needed" in message
    (folder / cifar.CHECKPOINT).unlink()
    passed, message = verdicts_for(lesson, {}, folder, test)[test[0]]
    assert not passed and "no cifar10_model.pt" in message


@pytest.mark.slow
def test_the_notebook_has_its_time_outside_the_kernel_too(monkeypatch):
    import autograder.verify

    """The submission's budget covers the verification process's start-up and every call: past it, every test
    not yet decided fails, and verification ends within the budget however slow the student's code is."""
    import time

    monkeypatch.setattr(autograder.verify, "SUBMISSION_TIMEOUT_S", 3)
    slow = "def receptive_fields(layers):\n    import time\n    time.sleep(4)\n    return []\n"
    start = time.monotonic()
    verdicts = verdicts_for("06_receptive_fields", {"receptive_fields": slow})
    assert time.monotonic() - start < 3 + 10
    assert all(not passed and "ran out of time outside the kernel" in message for passed, message in verdicts.values())
