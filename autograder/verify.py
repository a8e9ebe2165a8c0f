"""Verification outside the notebook kernel: the decisive verdict on each graded test cell, in every lesson.

In-kernel defences are never enough: student code shares the kernel with the
tests, and can replace ``numpy.allclose``, the checks, even IPython's error
reporting. So after nbgrader's autograde, every test cell that nbgrader scored
is run again here, in the grading process, against the instructor's test code
(from the gradebook's source, never the student's copy), with the student's
functions replaced by proxies. The student's setup and solution cells run in a
separate sandboxed process (:mod:`autograder.runner`); what comes back is data only
(:mod:`autograder.wire`), so nothing the student wrote ever runs in this process and
the comparisons use pristine NumPy, PyTorch and ``cnn_course``'s checks. In NumPy
lessons that process cannot use torch or scipy; in none can it use the course's own
package as an answer key.

In the PyTorch lessons (06 to 09) the arguments are modules, tensors, optimizers...:
they go to the student's process pickled (the trusted direction) and come back as
data describing what the function did to them; a model the student's code builds
stays there, and the tests ask it questions (:mod:`autograder.objects`,
:class:`cnn_course.model_checks.Remote`). See the README for what this guarantees.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import pathlib
import select
import textwrap
import time

import numpy as np

from . import isolation, objects, wire
from .config import CELL_TIMEOUT_S, SUBMISSION_TIMEOUT_S

NUMPY_LESSON_PREFIXES = ("01_", "02_", "03_", "04_", "05_")
# All the replies of one submission's verification, together (each is at most wire.MAX_MESSAGE). The course's own
# tests send at most a few MiB in all per lesson; past this the tests still waiting fail.
MAX_SUBMISSION_BYTES = 2 << 30
RUNNER_PY = str(pathlib.Path(__file__).with_name("runner.py"))


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {}) if cell.cell_type == "code" else {}


def _forbidden_dirs() -> list[str]:
    import importlib.util

    dirs = []
    for name in ("torch", "scipy", "functorch", "torchvision"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs += [os.path.realpath(p) + os.sep for p in spec.submodule_search_locations]
    return dirs


def _violation(stderr: bytes) -> str:
    """The last rule violation a runner reported on stderr ("" if none)."""
    marks = [line for line in stderr.decode(errors="replace").splitlines() if line.startswith("CNN-VIOLATION: ")]
    return marks[-1][len("CNN-VIOLATION: "):] if marks else ""


class RunnerGone(Exception):
    pass


class SetupFailed(RunnerGone):
    """The instructor's setup cells could not run in the verification process (the grading run's canary,
    :func:`autograder.grade.canary`, shows they do for the instructor's own solution: so the submission is why)."""


NOT_VERIFIED = "could not be verified outside the notebook"


class Runner:
    """The student's cells, running in a sandboxed child process; call their functions with data."""

    def __init__(self, cells: list[tuple[str, str]], numpy_only: bool, files_from: pathlib.Path | None,
                 hide: list[str], timeout: float, deadline: float | None = None, cell_timeouts: list | None = None):
        self.cells, self.numpy_only, self.files_from, self.hide = cells, numpy_only, files_from, hide
        self.timeout = timeout
        self.cell_timeouts = cell_timeouts or [timeout] * len(cells)  # each cell's own (fitted) limit
        # The submission's whole time outside the kernel: no wait, however it is split, goes past it.
        self.deadline = time.monotonic() + SUBMISSION_TIMEOUT_S if deadline is None else deadline
        self.test_deadline: float | None = None  # the running test cell's limit: its calls wait no longer
        self.bytes_left = MAX_SUBMISSION_BYTES
        self.last_call_seconds: float | None = None
        self.proc = None
        self.names: dict[str, str] = {}
        self.status: list[str | None] = []
        self.defs = ""  # the classes and functions of the test cell now running (PyTorch lessons)
        self.theirs: dict[int, tuple] = {}  # id(stand-in) -> how the student's process knows it (autograder.objects)
        self.kept: list = []  # the stand-ins themselves, so that their ids stay theirs
        self.signatures: dict[str, list] = {}

    def start(self) -> None:
        if time.monotonic() >= self.deadline:
            raise RunnerGone("the notebook ran out of time outside the kernel")
        self.stderr = io.BytesIO()
        # NumPy lessons: a fresh interpreter, where torch is not even loaded; the others: the warm zygote's.
        self.proc = isolation.start_script(RUNNER_PY, _forbidden_dirs(), self.files_from, self.hide, warm=not self.numpy_only)
        self.to_child, self.from_child = self.proc.to_child, self.proc.from_child
        self._send({"numpy_only": self.numpy_only, "cells": [list(c) for c in self.cells]})
        try:
            self._recv(self.timeout * max(1, len(self.cells)))
        except RunnerGone as exc:
            raise SetupFailed(str(exc)) from None
        current = None
        while True:
            try:
                reply = self._recv(self.timeout if current is None else self.cell_timeouts[current])
            except RunnerGone:
                if current is None or self.cells[current][0] == "setup":
                    raise
                # A student cell ended the process (os._exit at top level): leave it out, as the
                # kernel run did after its restart, and start again.
                self.cells = self.cells[:current] + [(self.cells[current][0], "pass")] + self.cells[current + 1:]
                return self.start()
            if "cell" in reply:
                current = int(reply["cell"])
                continue
            break
        self.names, self.status = reply["names"], reply["status"]
        self.signatures = reply.get("signatures") or {}

    def _drain_stderr(self) -> None:
        """What the student's process wrote to stderr: kept up to 1 MiB, read 1 MiB at a time at most (a process
        that floods stderr must not keep the grader reading past its deadline)."""
        with contextlib.suppress(Exception):
            for _ in range(16):
                chunk = os.read(self.proc.stderr, 65536)
                if not chunk:
                    break
                if self.stderr.tell() < 1 << 20:
                    self.stderr.write(chunk)

    def _deadline(self, timeout: float, in_test: bool = False) -> tuple[float, str]:
        """When a wait of ``timeout`` s must end, and what to say if it does: the submission's deadline, and in a
        test cell's call that cell's limit, win when they come first."""
        mine = time.monotonic() + timeout
        if self.deadline < mine:
            return self.deadline, "the notebook ran out of time outside the kernel"
        if in_test and self.test_deadline is not None and self.test_deadline < mine:
            return self.test_deadline, "timed out: the test cell ran past its time limit"
        return mine, f"timed out after {int(timeout)} s"

    def _recv(self, timeout: float, in_test: bool = False):
        deadline, why = self._deadline(timeout, in_test)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise RunnerGone(why)
            ready, _, _ = select.select([self.from_child, self.proc.stderr], [], [], min(left, 1.0))
            if self.proc.stderr in ready:
                self._drain_stderr()
            if self.from_child in ready:
                try:  # a reply begun and never finished must not hold the grader either: the same deadline
                    return wire.recv(self.from_child, deadline=deadline, spend=self._spend)
                except TimeoutError:  # wire.recv past the deadline (before OSError, its base class)
                    self.stop()
                    raise RunnerGone(why) from None
                except (EOFError, ValueError, OSError) as exc:  # it ended, or wrote what is not a reply
                    self._gone(exc)

    def _spend(self, n: int) -> None:
        if n > self.bytes_left:
            raise ValueError(f"its replies went past {MAX_SUBMISSION_BYTES >> 20} MiB in all")
        self.bytes_left -= n

    def _gone(self, exc: BaseException | None):
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=2 if isinstance(exc, (EOFError, BrokenPipeError)) else 0)
        self._drain_stderr()
        code = self.proc.poll()
        why = self.violation() or (f"the process ended (exit status {code})" if code is not None
                                   else f"it sent what is not a reply ({exc})" if isinstance(exc, ValueError)
                                   else "it sent something that is not a reply")
        self.stop()
        raise RunnerGone(why) from exc

    def _send(self, message) -> None:
        """Write a request without blocking on it: the child's stderr is drained meanwhile, and anything it
        writes on the reply channel before the request is read is not a reply (only student code does that)."""
        view = memoryview(wire.frame(message))
        os.set_blocking(self.to_child, False)
        deadline, why = self._deadline(self.timeout)
        while view:
            if time.monotonic() > deadline:
                self.stop()
                raise RunnerGone(f"did not read its request: {why}")
            ready, writable, _ = select.select([self.from_child, self.proc.stderr], [self.to_child], [], 1.0)
            if self.proc.stderr in ready:
                self._drain_stderr()
            if self.from_child in ready:
                self._gone(None)
            if writable:
                try:
                    view = view[os.write(self.to_child, view):]
                except BlockingIOError:
                    pass
                except OSError as exc:  # it is gone
                    self._gone(exc)

    def violation(self) -> str:
        return _violation(self.stderr.getvalue())

    def stands_for(self, stand_in, reference: tuple) -> None:
        self.theirs[id(stand_in)] = reference
        self.kept.append(stand_in)

    def call(self, name: str, args: tuple, kwargs: dict, value: bool = False, count: bool = False, ask: str = ""):
        if self.proc is None:
            self.start()
        start = time.perf_counter()  # the grader's clock: a duration the student's process reports could be forged
        if self.numpy_only or value:
            self._send({"call": name, "args": list(args), "kwargs": dict(kwargs), "value": value})
        else:  # PyTorch lessons: the objects themselves, pickled (this direction is trusted), see autograder.objects
            from cnn_course.model_checks import GradientProbe

            pickled = objects.dumps_call(args, kwargs, self.theirs)
            watched = [i for i, a in enumerate([*args, *kwargs.values()]) if any(p.model is a for p in GradientProbe.live)]
            self._send({"call": name, "pickled": np.frombuffer(pickled, np.uint8), "defs": self.defs,
                        "probe": watched, "count": count, "ask": ask})
        reply = self._recv(self.timeout, in_test=True)
        self.last_call_seconds = time.perf_counter() - start  # the call with its transport: never less than the call
        return reply

    def invoke(self, what: str, name: str, args: tuple, kwargs: dict, count: bool = False, ask: str = ""):
        """Call ``name`` (or ask a model ``ask``) there; show what it did to the arguments here; return its result
        and the seconds the call took, timed here around the request and its reply."""
        from cnn_course.checks import CheckFailed

        try:
            reply = self.call(name, args, kwargs, count=count, ask=ask)
        except wire.NotData as exc:
            raise CheckFailed(f"{what} was given {exc}, which the grader cannot pass on") from None
        except RunnerGone as exc:
            raise CheckFailed(f"{what}: {exc}") from None
        if not self.numpy_only:  # what the function did to the test's modules and tensors
            for obj, report in zip([*args, *kwargs.values()], reply.get("args") or []):
                objects.apply(obj, report)
        if "raised" in reply:
            raise _exception(reply["raised"], reply["message"], reply["builtin"])
        if "notdata" in reply:
            raise CheckFailed(f"{what} returned {reply['notdata']}, not data (numbers, arrays, tensors...)")
        if self.numpy_only:
            for before, after in zip(args, reply["args"]):  # let the caller see in-place edits
                if type(before) is np.ndarray and type(after) is np.ndarray and before.shape == after.shape:
                    with contextlib.suppress(Exception):
                        np.copyto(before, after, casting="unsafe")
        return self._models(reply["result"]), self.last_call_seconds

    def _models(self, value):
        """The result, with each model that stayed in the student's process as a RemoteModel."""
        if type(value) is wire.Handle:
            return _remote_model_class()(self, int(value))
        if type(value) in (list, tuple):
            return type(value)(self._models(v) for v in value)
        if type(value) is dict:
            return {k: self._models(v) for k, v in value.items()}
        return value

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.close()
        self.proc = None


def _exception(name: str, message: str, builtin: bool) -> BaseException:
    import builtins

    cls = getattr(builtins, name, None) if builtin else None
    if isinstance(cls, type) and issubclass(cls, Exception) and cls not in (SystemExit, KeyboardInterrupt):
        try:
            return cls(message)
        except Exception:  # noqa: BLE001
            pass
    return RuntimeError(f"{name}: {message}")


class Proxy:
    """Stands in for one student function in the test cell's namespace."""

    def __init__(self, runner: Runner, name: str):
        self._runner, self.__name__, self.__qualname__ = runner, name, name
        runner.stands_for(self, ("student", name))
        self.__signature__ = _signature(runner.signatures.get(name))

    def __call__(self, *args, **kwargs):
        result, self.last_call_seconds = self._runner.invoke(self.__name__, self.__name__, args, kwargs)
        return result  # last_call_seconds: timed by the grader, transport included (lesson 03's speed test reads it)

    def count_torch_calls(self, *args, **kwargs) -> int:
        """cnn_course.torch_checks.torch_calls, counted in the process where the function runs."""
        return self._runner.invoke(self.__name__, self.__name__, args, kwargs, count=True)[0]


def _signature(params):
    """An inspect.Signature from the data the student's process sent, or None."""
    import inspect

    try:
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                 inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD)
        return inspect.Signature([inspect.Parameter(name, kinds[kind],
                                                    default=default if has_default else inspect.Parameter.empty)
                                  for name, kind, has_default, default in params])
    except (TypeError, ValueError, IndexError):
        return None


@functools.cache
def _remote_model_class():
    """RemoteModel, made on first use (cnn_course.model_checks imports torch, which NumPy lessons never need)."""
    from cnn_course.model_checks import Remote

    class RemoteModel(Remote):
        """A model the student's code built, which stays in the student's process; tests ask it questions
        (``cnn_course.model_checks.describe``, ``forward``...) and get data back."""

        def __init__(self, runner: Runner, handle: int):
            self._runner, self.handle = runner, handle
            runner.stands_for(self, ("handle", handle))

        def ask(self, question: str, *args, **kwargs):
            return self._runner.invoke(f"the model ({question})", "", (self, *args), kwargs, ask=question)[0]

        def __repr__(self):
            return f"<the model your code built, kept in its own process (#{self.handle})>"

    return RemoteModel


@dataclasses.dataclass
class CellVerdict:
    grade_id: str
    passed: bool
    message: str = ""


def graded_names(source_nb) -> list[str]:
    """The names that cross from the student's process into the tests: the lesson's graded functions and
    ``q_*`` answers (each solution cell's grade id is the name it defines), never the student's other names."""
    return [m["grade_id"] for m in map(_meta, source_nb.cells) if m.get("solution") and m.get("grade_id")]


def verify(source_nb, student_nb, lesson: str, test_ids: list[str], files_from: pathlib.Path | None,
           hide: list[str], timeout: float = CELL_TIMEOUT_S, release_nb=None,
           deadline: float | None = None, cell_limits: dict[str, int] | None = None) -> dict[str, CellVerdict]:
    """Re-run the graded test cells ``test_ids`` of ``source_nb`` against ``student_nb``'s solution cells.

    ``source_nb`` is the instructor's notebook (hidden tests included); only its setup
    and test cells run here. ``student_nb`` supplies the solution cells, by grade_id,
    and, when ``release_nb`` (the student version as released) is given, the code cells
    the student added (helpers in a cell of their own), which run before the
    solution cells that follow them, as in the notebook. ``deadline`` (``time.monotonic()``)
    ends every wait for the student's process: the submission's budget. ``cell_limits``: the
    lesson's fitted time limits (:mod:`autograder.limits`), which hold here as in the kernel.

    Fails closed: every id in ``test_ids`` gets a verdict, and a verification that cannot start,
    dies, hangs or sends what is not a reply fails the tests it was to decide.
    """
    verdicts = _verify(source_nb, student_nb, lesson, test_ids, files_from, hide, timeout, release_nb, deadline,
                       cell_limits or {})
    return {gid: verdicts.get(gid) or CellVerdict(gid, False, f"{NOT_VERIFIED}: the test did not run there")
            for gid in test_ids}


def _verify(source_nb, student_nb, lesson, test_ids, files_from, hide, timeout, release_nb, deadline, cell_limits):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    student_solutions = {_meta(c).get("grade_id"): c.source for c in student_nb.cells if _meta(c).get("solution")}
    added = _student_added_cells(student_nb, release_nb)  # solution grade_id -> student-added cells just before it
    cells, cell_timeouts, setup_sources = [], [], []
    for cell in source_nb.cells:
        meta = _meta(cell)
        if not meta:
            continue
        if meta.get("solution"):
            cells += [("student", source) for source in added.get(meta["grade_id"], [])]
            cells.append(("solution", student_solutions.get(meta["grade_id"], "")))
            cell_timeouts += [timeout] * (len(cells) - len(cell_timeouts) - 1)
            cell_timeouts.append(min(timeout, cell_limits.get(f"solution:{meta['grade_id']}", timeout)))
        elif not meta.get("grade") and cell.cell_type == "code":
            cells.append(("setup", cell.source))
            cell_timeouts.append(timeout)
            setup_sources.append(cell.source)
    runner = Runner(cells, lesson.startswith(NUMPY_LESSON_PREFIXES), files_from, hide, timeout, deadline,
                    cell_timeouts)
    verdicts: dict[str, CellVerdict] = {}
    try:
        try:
            runner.start()
        except SetupFailed as exc:  # the instructor's setup runs there for the canary: the submission is why
            return {gid: CellVerdict(gid, False, f"{NOT_VERIFIED}: the lesson's setup did not run beside your "
                                                 f"files ({exc})") for gid in test_ids}
        except RunnerGone as exc:
            return {gid: CellVerdict(gid, False, f"your notebook's code could not run outside the kernel: {exc}")
                    for gid in test_ids}
        namespace: dict = {"__name__": "__main__"}
        with _quiet():
            for source in setup_sources:
                exec(compile(source, "<setup>", "exec"), namespace)
        refused = _cross_graded_names(runner, graded_names(source_nb), namespace)
        for cell in source_nb.cells:
            gid = _meta(cell).get("grade_id")
            if gid not in test_ids:
                continue
            if time.monotonic() > runner.deadline:
                verdicts[gid] = CellVerdict(gid, False, "the notebook ran out of time outside the kernel")
                continue
            runner.defs = "" if runner.numpy_only else objects.definitions(cell.source)
            runner.test_deadline = time.monotonic() + min(timeout, cell_limits.get(gid, timeout))
            try:
                with _quiet():
                    exec(compile(textwrap.dedent(cell.source), f"<{gid}>", "exec"), dict(namespace))
                verdicts[gid] = CellVerdict(gid, True)
            except BaseException as exc:  # noqa: BLE001 - a failing test is a verdict
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                if isinstance(exc, NameError) and getattr(exc, "name", None) in refused:
                    message = refused[exc.name]
                verdicts[gid] = CellVerdict(gid, False, message[:300])
                if runner.proc is not None and runner.proc.poll() is not None:
                    runner.stop()
            finally:
                plt.close("all")
    finally:
        runner.stop()
    return verdicts


def _cross_graded_names(runner: Runner, graded: list[str], namespace: dict) -> dict[str, str]:
    """Put a stand-in for each graded function, and the value of each ``q_*`` answer, into the tests'
    ``namespace``; nothing else the student's cells define crosses (their ``len`` or ``int`` would otherwise
    replace the builtin in the instructor's tests). Returns the graded names refused, with the reason."""
    import builtins

    refused = {}
    for name in graded:
        kind = runner.names.get(name)
        if kind is None or name in namespace:  # not defined there; or one of the trusted setup's own names
            continue
        if hasattr(builtins, name):
            refused[name] = f"{name} shadows Python's builtin {name}(): the grader does not take it"
        elif kind == "function" and not name.startswith("q_"):
            namespace[name] = Proxy(runner, name)
        else:
            try:
                reply = runner.call(name, (), {}, value=True)
            except (RunnerGone, wire.NotData) as exc:
                refused[name] = f"{name} could not be read from your notebook: {exc}"
                continue
            if "result" in reply:
                namespace[name] = reply["result"]
            else:
                refused[name] = f"{name} is not data (a number, a tuple, a string...): {reply.get('notdata', '')}"
    return refused


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _student_added_cells(student_nb, release_nb) -> dict[str, list[str]]:
    """Code cells the student added (not in the release), keyed by the solution cell they precede."""
    released_ids = {c.get("id") for c in release_nb.cells} if release_nb is not None else None
    added: dict[str, list[str]] = {}
    pending: list[str] = []
    for cell in student_nb.cells:
        meta = _meta(cell)
        if meta.get("solution"):
            added[meta["grade_id"]] = pending
            pending = []
        elif (released_ids is not None and cell.cell_type == "code" and not meta
              and cell.get("id") not in released_ids and cell.source.strip()):
            pending.append(cell.source)
    return added
