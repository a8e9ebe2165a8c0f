"""The untrusted side of verification: runs a student's cells and answers calls with data.

Started by :mod:`autograder.verify` inside :mod:`autograder.sandbox` as
``python -I runner.py IN_FD OUT_FD``. It reads the cells to run, runs them, then
answers ``call`` requests (function name, arguments) with the result, the
arguments after the call (to catch in-place edits) or the exception's type and
message: data only, see :mod:`autograder.wire`.

For NumPy exercises (``numpy_only``), torch and scipy are replaced by stand-ins
before any cell runs: importing them works (setup code may), calling anything in
them ends this process with a report on stderr, and an audit hook (which Python
offers no way to remove) ends it as well when anything opens a file of the real
packages, starts a process, or, once the student's cells start, uses ctypes or
walks the garbage collector.
"""

from __future__ import annotations

import os
import sys
from time import perf_counter as _perf_counter  # bound before any student code runs

FORBIDDEN = ("torch", "scipy")
VIOLATION_EXIT = 86


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
        _die(f"called {object.__getattribute__(self, '_name')}")

    def __mro_entries__(self, bases):
        _die(f"subclassed {object.__getattribute__(self, '_name')}")


def _install_numpy_only_guard(package_dirs: tuple[str, ...]) -> None:
    import importlib.abc
    import importlib.machinery
    import types

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname, path=None, target=None):
            if fullname.split(".")[0] in FORBIDDEN:
                return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
            return None

        def create_module(self, spec):
            module = types.ModuleType(spec.name)
            module.__path__ = []
            module.__getattr__ = lambda attr, _n=spec.name: _Forbidden(f"{_n}.{attr}")
            return module

        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, Finder())
    armed = [False]

    def hook(event, args, _dirs=package_dirs, _die=_die, _armed=armed):
        if event == "cnn.arm":
            _armed[0] = True
        elif event == "open" and args and isinstance(args[0], str):
            if args[0].startswith(_dirs):
                _die(f"opened {args[0]} (NumPy exercises must not use torch or scipy)")
        elif event == "sys.addaudithook":
            _die(f"tried {event} (not allowed while grading)")
        elif _armed[0] and (event.startswith("ctypes.") or event.startswith("gc.get_")
                            or event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                                         "os.fork", "os.forkpty", "pty.spawn", "os.add_dll_directory",
                                         "cpython.PyInterpreterState_New")):
            _die(f"used {event} (not allowed while grading)")

    sys.addaudithook(hook)


def prepare_process() -> None:
    """Student output must not reach our pipes: stdin from /dev/null, stdout to stderr (captured,
    truncated); the lesson's files (the working directory) importable, as in the kernel."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    sys.path.insert(0, os.getcwd())


def main() -> None:
    in_fd, out_fd = int(sys.argv[1]), int(sys.argv[2])
    package_dirs = tuple(a for a in sys.argv[3:] if a)
    prepare_process()
    import numpy as np  # noqa: F401  (before any guard: NumPy itself may load libraries)

    from autograder import wire

    request = wire.recv(in_fd)
    if request.get("numpy_only"):
        _install_numpy_only_guard(package_dirs)
    namespace: dict = {"__name__": "__main__"}
    status = []
    armed = False
    for index, (kind, source) in enumerate(request["cells"]):
        if kind != "setup" and not armed:
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
        wire.send(out_fd, {"setup_done": True})
    names = {}
    for name, value in list(namespace.items()):
        if name.startswith("__"):
            continue
        names[name] = "function" if callable(value) else "value"
    wire.send(out_fd, {"status": status, "names": names})
    while True:
        try:
            request = wire.recv(in_fd)
        except EOFError:
            os._exit(0)
        name = request["call"]
        fn = namespace.get(name)
        try:
            if name not in namespace:
                raise NameError(f"name {name!r} is not defined")
            if request.get("value"):
                result, args_after, kwargs_after = fn, (), {}
            else:
                args, kwargs = request["args"], request["kwargs"]
                start = _perf_counter()
                result = fn(*args, **kwargs)
                seconds = _perf_counter() - start  # the call alone: speed tests must not pay for the transport
                args_after, kwargs_after = args, kwargs
            try:
                reply = {"result": result, "args": list(args_after), "kwargs": dict(kwargs_after)}
                if not request.get("value"):
                    reply["seconds"] = seconds
                payload = wire.dumps(reply)
            except wire.NotData as exc:
                reply = {"notdata": str(exc)}
                payload = None
        except BaseException as exc:  # noqa: BLE001 - the student's exception is the answer
            reply = {"raised": type(exc).__name__, "message": str(exc)[:2000],
                     "builtin": type(exc).__module__ == "builtins"}
            payload = None
        if payload is None:
            wire.send(out_fd, reply)
        else:
            import struct
            data = struct.pack("<Q", len(payload)) + payload
            view = memoryview(data)
            while view:
                view = view[os.write(out_fd, view):]


if __name__ == "__main__":
    main()
