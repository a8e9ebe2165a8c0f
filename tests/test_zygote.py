"""Kernels forked from the grader's warm zygote behave like kernels started from nothing."""

import os
import pathlib
import signal
import time

import nbformat
import pytest

from autograder import execute
from autograder.config import course_config

PROBE = """
import os, sys
print("preloaded", "colorsys" in sys.modules)
print("report", os.environ.get("CNN_SANDBOX_REPORT"))
print("pids", os.getpid(), os.getppid(), os.getpgid(0))
print("cwd_on_path", os.getcwd() in sys.path or "" in sys.path)
print("mode", os.environ.get("CNN_COURSE_MODE"), os.environ.get("OMP_NUM_THREADS"))
import numpy
print("draw", numpy.random.rand())
"""


def run(cells: list[str], tmp_path: pathlib.Path) -> list[str]:
    """Run code cells through the grader's executor; return each cell's text and errors."""
    empty = tmp_path / "lesson_files"
    empty.mkdir(exist_ok=True)
    (empty / "helper_module.py").write_text("VALUE = 7\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    executor = execute.ResilientExecute(config=course_config(tmp_path / "course"))
    executor.preprocess(nb, {"metadata": {"path": str(empty)}})
    return ["".join(o.get("text", "") or f"{o.get('ename')}: {o.get('evalue')}" for o in c.outputs) for c in nb.cells]


def field(text: str, name: str) -> str:
    return next(line.split(" ", 1)[1] for line in text.splitlines() if line.startswith(name + " "))


@pytest.fixture
def zygote():
    z = execute.start_zygote(["colorsys", "numpy", "module_that_does_not_exist"])
    yield z
    execute.stop_zygote()


def test_forked_kernels_are_sandboxed_fresh_and_independent(zygote, tmp_path):
    first = run([PROBE, "import helper_module\nprint('local', helper_module.VALUE)"], tmp_path)
    second = run([PROBE], tmp_path)
    assert zygote.ready == ["colorsys", "numpy"]  # a module this machine lacks is skipped, not fatal
    for out in (first[0], second[0]):
        assert field(out, "preloaded") == "True", out  # it really was forked from the zygote
        pid, ppid, pgid = map(int, field(out, "pids").split())
        assert ppid == zygote.proc.pid and pgid == pid  # its own process group, like a launched kernel
        assert field(out, "cwd_on_path") == "True" and field(out, "mode") == "smoke 1"
        report = field(out, "report")
        assert "memory=" in report and "cpu=" in report, report  # the limits of autograder/sandbox.py
    assert first[1] == "local 7\n"  # the lesson's files sit in the working directory, importable
    assert field(first[0], "draw") != field(second[0], "draw")  # NumPy is reseeded in each kernel
    assert field(first[0], "report") == field(second[0], "report")


def test_a_forked_kernel_that_dies_reports_its_exit_status(zygote, tmp_path):
    out = run(["x = 1", "import os\nos._exit(3)", "print('next cell ran')"], tmp_path)
    assert "KernelDied" in out[1] and "exit status 3" in out[1], out
    assert out[2] == "next cell ran\n"


def test_kernels_die_with_their_zygote(zygote, tmp_path):
    # A kernel with no connection file writes its own and waits for clients forever.
    pid = zygote.spawn(["--IPKernelApp.log_level=ERROR"], dict(os.environ), {"cwd": str(tmp_path), "namespaces": False})
    time.sleep(3)
    assert zygote.exit_code(pid) is None, "the kernel did not start"
    zygote.proc.kill()
    zygote.proc.wait()
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if open(f"/proc/{pid}/stat").read().split()[2] == "Z":
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("a kernel outlived its zygote")


def test_without_a_live_zygote_kernels_start_the_usual_way(tmp_path):
    z = execute.start_zygote(["colorsys"])
    z.proc.kill()
    z.proc.wait()
    try:
        out = run([PROBE], tmp_path)
    finally:
        execute.stop_zygote()
    assert field(out[0], "preloaded") == "False"
    assert int(field(out[0], "pids").split()[1]) != z.proc.pid


def test_modules_imported_by_reads_every_import_in_code_cells(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%matplotlib inline\nimport numpy as np, torch.nn.functional as F\n"
                                  "from cnn_course import checks"),
        nbformat.v4.new_markdown_cell("import not_code"),
        nbformat.v4.new_code_cell("def f():\n    import math\nfrom . import relative\nthis is not python"),
        nbformat.v4.new_code_cell("from math import pi"),
    ])
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    assert execute.modules_imported_by([path]) == ["numpy", "torch.nn.functional", "cnn_course", "math"]
