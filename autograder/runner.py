"""The untrusted side of verification: runs a student's cells and answers calls with data.

Started by :mod:`autograder.verify` inside :mod:`autograder.sandbox` as
``python -I runner.py IN_FD OUT_FD``. It reads the cells to run, runs them, then
answers ``call`` requests (function name, arguments) with the result, the
arguments after the call (to catch in-place edits) or the exception's type and
message: data only, see :mod:`autograder.wire`.

The course's own modules, except the checks the grader's requests use, are replaced
by stand-ins before any cell runs, in every lesson: importing them works (setup code
does), calling anything in them ends this process with a report on stderr ("the
course's own package is not an answer key"), except the few helpers a lesson tells
graded functions to use (``HELPERS``), which are copies that see nothing else. For NumPy exercises (``numpy_only``),
torch and scipy are stand-ins too. An audit hook (which Python offers no way to
remove) ends the process as well when anything opens the files of what was replaced
or, once the student's cells start, walks the garbage collector (and, in NumPy
exercises, starts a process or uses ctypes).

In the PyTorch lessons a call's arguments come pickled from the grader (the trusted
direction) and the reply says, as data, what became of them (:mod:`autograder.objects`).
"""

from __future__ import annotations

import os
import sys

FORBIDDEN = ("torch", "scipy")
COURSE_TOOLS = ("cnn_course", "cnn_course.checks", "cnn_course.model_checks", "cnn_course.torch_checks")
VIOLATION_EXIT = 86


HELPERS = {"cnn_course.cifar": ("amp_dtype_for",)}  # what lesson 08's text tells graded functions to use


def _helpers(course_dir: str) -> dict:
    """Copies of the allowed helpers, made from their source, that see torch and nothing else of their module."""
    import __future__

    import ast

    import torch

    out = {}
    for module, names in HELPERS.items():
        path = os.path.join(course_dir, module.split(".", 1)[1] + ".py")
        with open(path) as f:
            body = [n for n in ast.parse(f.read()).body if isinstance(n, ast.FunctionDef) and n.name in names]
        namespace = {"torch": torch}
        exec(compile(ast.Module(body, []), path, "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True),
             namespace)
        out[module] = {name: namespace[name] for name in names}
    return out


def _answer_key(name: str) -> bool:
    """A module of the course's package that student code may not use (explorers, CIFAR helpers...)."""
    return name.startswith("cnn_course.") and name not in COURSE_TOOLS


def _die(message: str, _write=os.write, _exit=os._exit) -> None:
    try:
        _write(2, ("\nCNN-VIOLATION: " + message + "\n").encode())
    finally:
        _exit(VIOLATION_EXIT)


class _Forbidden:
    """Stands in for torch/scipy and everything reached from them; calling it is a violation."""

    def __init__(self, name):
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attr):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return _Forbidden(f"{object.__getattribute__(self, '_name')}.{attr}")

    def __call__(self, *args, **kwargs):
        name = object.__getattribute__(self, "_name")
        _die(f"called {name}" + (" (the course's own package is not an answer key: write it yourself)"
                                  if name.startswith("cnn_course") else ""))

    def __mro_entries__(self, bases):
        _die(f"subclassed {object.__getattribute__(self, '_name')}")


def _install_guard(numpy_only: bool, package_dirs: tuple[str, ...]) -> None:
    import importlib.abc
    import importlib.machinery
    import types

    import cnn_course

    course_dir = os.path.realpath(cnn_course.__path__[0]) + os.sep
    answer_files = [f for f in os.listdir(course_dir) if f.endswith(".py") and _answer_key(f"cnn_course.{f[:-3]}")]
    answer_stems = frozenset(os.path.basename(f)[:-3] for f in answer_files)  # their .py and cached .pyc
    for name in [n for n in sys.modules if _answer_key(n)]:  # preloaded by a warm start: forget them
        del sys.modules[name]
        if name.count(".") == 1:
            vars(cnn_course).pop(name.split(".")[1], None)
    forbidden = FORBIDDEN if numpy_only else ()
    helpers = {} if numpy_only else _helpers(course_dir)

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname, path=None, target=None, _answer_key=_answer_key):
            if fullname.split(".")[0] in forbidden or _answer_key(fullname):
                return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
            return None

        def create_module(self, spec):
            module = types.ModuleType(spec.name)
            module.__path__ = []
            allowed = helpers.get(spec.name, {})
            module.__getattr__ = lambda attr, _n=spec.name: allowed.get(attr) or _Forbidden(f"{_n}.{attr}")
            return module

        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, Finder())
    armed = [False]

    def hook(event, args, _dirs=package_dirs, _die=_die, _armed=armed, _numpy_only=numpy_only,
             _basename=os.path.basename, _realpath=os.path.realpath, _fsdecode=os.fsdecode):
        if event == "cnn.arm":
            _armed[0] = True
        elif event == "open" and args and isinstance(args[0], (str, bytes)):
            path = _fsdecode(args[0])
            if _dirs and path.startswith(_dirs):
                _die(f"opened {path} (NumPy exercises must not use torch or scipy)")
            if _basename(path).split(".")[0] in answer_stems and _realpath(path).startswith(course_dir):
                _die(f"opened {path} (the course's own package is not an answer key: write it yourself)")
        elif event == "sys.addaudithook":
            _die(f"tried {event} (not allowed while grading)")
        elif _armed[0] and (event.startswith("gc.get_") or _numpy_only and (
                event.startswith("ctypes.")
                or event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                             "os.fork", "os.forkpty", "pty.spawn", "os.add_dll_directory",
                             "cpython.PyInterpreterState_New"))):
            _die(f"used {event} (not allowed while grading)")

    sys.addaudithook(hook)


def prepare_process() -> None:
    """Student output must not reach our pipes: stdin from /dev/null, stdout to stderr (captured, truncated)."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)


def let_student_files_be_imported() -> None:
    """The lesson's files and the student's own (the working directory) importable, as in the kernel, but
    after every installed package: a file the student uploaded beside the notebook (``numpy.py``, a folder
    named ``autograder``) must not stand in for what this process, or the grader's requests, import. Called
    once everything this process needs is imported."""
    sys.path.append(os.getcwd())


def _torch_call(fn, args, kwargs, request, objects, model_checks, torch_checks):
    """Run one call on the objects the grader sent; return (result, what became of each argument, exception).

    A question about a model that lives here (``ask``) reports nothing: the model stays here."""
    everything = list(args) + list(kwargs.values())
    probes = {i: model_checks.GradientProbe(everything[i]) for i in request.get("probe") or []
              if i < len(everything)}
    before = objects.global_hooks()
    result = error = None
    try:
        if request.get("count"):  # torch_checks.torch_calls, counted where the function runs
            result = torch_checks.torch_calls(fn, *args, **kwargs)
        else:
            result = fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - the exception is the answer; the objects' state too
        error = exc
    for probe in probes.values():
        probe.remove()
    if request.get("ask"):
        return result, [None] * len(everything), error
    return result, [objects.report(v, probes.get(i), before) for i, v in enumerate(everything)], error


def main() -> None:
    in_fd, out_fd = int(sys.argv[1]), int(sys.argv[2])
    package_dirs = tuple(a for a in sys.argv[3:] if a)
    prepare_process()
    import struct

    import numpy as np  # noqa: F401  (before any guard: NumPy itself may load libraries)

    from autograder import wire

    request = wire.recv(in_fd)
    numpy_only = bool(request.get("numpy_only"))
    if not numpy_only:  # what the grader's requests use, imported before any guard or student code
        import torch
        import torch._dynamo  # noqa: F401  (an optimizer's first step imports it)

        from autograder import objects
        from cnn_course import model_checks, torch_checks

        torch.set_num_threads(1)
    _install_guard(numpy_only, package_dirs if numpy_only else ())
    let_student_files_be_imported()  # only now: nothing above may come from the student's folder
    namespace: dict = {"__name__": "__main__"}
    status = []
    armed = False
    setup_namespace: dict = {}
    test_namespaces: dict = {}  # the definitions of a test cell -> where they ran
    for index, (kind, source) in enumerate(request["cells"]):
        if kind != "setup" and not armed:
            setup_namespace = dict(namespace)
            wire.send(out_fd, {"setup_done": True})  # the instructor's setup ran; student code starts now
            sys.audit("cnn.arm")
            armed = True
        if armed:
            wire.send(out_fd, {"cell": index})  # so that a cell that ends the process can be left out next time
        try:
            exec(compile(source, f"<{kind} cell>", "exec"), namespace)
            status.append(None)
        except BaseException as exc:  # noqa: BLE001 - a failing cell is a result
            status.append(f"{type(exc).__name__}: {exc}"[:500])
    if not armed:
        setup_namespace = dict(namespace)
        wire.send(out_fd, {"setup_done": True})
    names, signatures = {}, {}
    for name, value in list(namespace.items()):
        if name.startswith("__"):
            continue
        names[name] = "function" if callable(value) else "value"
        if callable(value) and not numpy_only:
            signatures[name] = objects.signature(value)
    wire.send(out_fd, {"status": status, "names": names, "signatures": signatures})
    handles: list = []  # the models the student's functions built, kept here; the grader holds their numbers
    while True:
        try:
            request = wire.recv(in_fd)
        except EOFError:
            os._exit(0)
        name = request["call"]
        fn = model_checks.QUESTIONS.get(request["ask"]) if request.get("ask") else namespace.get(name)
        args_after = None
        try:
            if fn is None and name not in namespace:
                raise NameError(f"name {name!r} is not defined")
            if request.get("value"):
                result, args_after, kwargs_after = fn, (), {}
            elif not numpy_only:
                defs = request.get("defs") or ""
                if defs not in test_namespaces:  # the test cell's own classes, run as the instructor wrote them
                    test_namespaces[defs] = dict(setup_namespace)
                    exec(compile(defs, "<test definitions>", "exec"), test_namespaces[defs])
                args, kwargs = objects.loads_call(request["pickled"].tobytes(), test_namespaces[defs], namespace,
                                                  handles)
                result, args_after, error = _torch_call(fn, args, kwargs, request, objects, model_checks, torch_checks)
                kwargs_after = {}
                if error is not None:
                    raise error
                result = objects.keep_handles(result, handles)
            else:
                args, kwargs = request["args"], request["kwargs"]
                result = fn(*args, **kwargs)  # timed by the grader, never here (a clock here is the student's)
                args_after, kwargs_after = args, kwargs
            try:
                reply = {"result": result, "args": list(args_after), "kwargs": dict(kwargs_after)}
                payload = wire.dumps(reply)
            except wire.NotData as exc:
                reply = {"notdata": str(exc)}
                payload = None
        except BaseException as exc:  # noqa: BLE001 - the student's exception is the answer
            reply = {"raised": type(exc).__name__, "message": str(exc)[:2000],
                     "builtin": type(exc).__module__ == "builtins"}
            payload = None
            if not numpy_only and args_after is not None:
                reply["args"] = args_after  # what the function did to the objects before it raised
        if payload is None:
            wire.send(out_fd, reply)
        else:
            data = struct.pack("<Q", len(payload)) + payload
            view = memoryview(data)
            while view:
                view = view[os.write(out_fd, view):]


if __name__ == "__main__":
    main()
