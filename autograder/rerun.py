"""The untrusted side of the PyTorch lessons' re-run: the whole notebook again, in a fresh process.

Lessons 06 to 09 pass modules, tensors and loaders to the learner's functions, so
their tests cannot run in the grader with the student's code at arm's length
(:mod:`autograder.runner` does that for the NumPy lessons). Instead the instructor's
cells (setup, demonstrations, the tests that passed in the kernel) and the student's
solution cells run again here, in notebook order, inside :mod:`autograder.sandbox`,
with defences set up *before the first student cell*, which the kernel cannot have:

- the functions and classes of the modules the tests rely on (``builtins``, NumPy,
  PyTorch, ``cnn_course``'s checks, this file's own helpers) are recorded; after every
  test cell any that was replaced is put back and the cell fails, as does every later
  test ("your code replaced torch.allclose"); so does a test cell during which the
  names the instructor's cells bound (``checks``, ``torch``, ``F``...) were rebound;
- before every test cell those names are bound again to the instructor's objects;
- an audit hook ends the process when code uses ctypes, walks the garbage collector,
  rewrites a trusted function's code, defaults or closure, opens ``/proc/*/mem`` or
  adds an audit hook;
- each verdict line carries a random token from the grader and is written with
  functions captured before any student code ran.

Started as ``python -I rerun.py IN_FD OUT_FD``; reads one :mod:`autograder.wire`
request ``{"token", "cells": [[kind, source, grade_id], ...]}`` and writes lines
``TOKEN cell INDEX`` before each cell, ``TOKEN test GRADE_ID 1|0 HEX(message)`` after
each test cell, and ``TOKEN done`` at the end.
"""

from __future__ import annotations

import os
import sys

from autograder import runner
from autograder.runner import _die  # how a violation ends the process, as in the NumPy lessons' runner

TRUSTED_MODULES = ("builtins", "numpy", "torch", "torch.nn", "torch.nn.functional", "torch.autograd",
                   "cnn_course.checks", "cnn_course.torch_checks", "cnn_course.model_checks", "cnn_course.oracle",
                   "copy", "math", "os")
TRUSTED_CLASSES = (("torch", "Tensor"), ("torch.nn", "Module"), ("torch.nn", "Parameter"),
                   ("torch.nn", "Sequential"), ("cnn_course.checks", "CheckFailed"))
OURS = ("cnn_course.",)  # every attribute of our own modules is recorded, not only the public callables
FUNCTION_INTERNALS = ("__code__", "__defaults__", "__kwdefaults__", "__closure__", "__globals__")


def _record() -> tuple:
    """(label, namespace dict, name, value) for every trusted attribute; values held, so identity is meaningful."""
    rows = []
    for modname in TRUSTED_MODULES:
        module = sys.modules.get(modname)
        if module is None:
            continue
        ours = modname.startswith(OURS)
        for name, value in list(vars(module).items()):
            if ours or (not name.startswith("_") and callable(value)) or name == "__import__":
                rows.append((f"{modname}.{name}", vars(module), name, value))
    for modname, clsname in TRUSTED_CLASSES:
        cls = getattr(sys.modules.get(modname), clsname, None)
        if isinstance(cls, type):
            for name, value in list(vars(cls).items()):
                rows.append((f"{modname}.{clsname}.{name}", cls, name, value))
            # A new attribute on a class shadows what it inherits (torch.Tensor.__eq__ lives on its C base).
            rows.append((f"{modname}.{clsname}", cls, None, frozenset(vars(cls))))
    return tuple(rows)


_MISSING = object()


def _changed(record: tuple, _missing=_MISSING, _type=type, _dict=dict) -> list:
    """Labels of recorded attributes that are no longer the recorded objects (after putting them back)."""
    changed = []
    for label, where, name, value in record:
        if name is None:
            for added in [key for key in where.__dict__ if key not in value]:
                changed.append(f"{label}.{added}")
                _type.__delattr__(where, added)
        elif _type(where) is _dict:
            now = where.get(name, _missing)
            if now is not value:
                changed.append(label)
                where[name] = value
        else:
            now = where.__dict__.get(name, _missing)
            if now is not value:
                changed.append(label)
                _type.__setattr__(where, name, value)
    return changed


def _install_hook(trusted_files: tuple, _die=_die, _isinstance=isinstance, _str=str, _getattr=getattr) -> None:
    import types

    function_type = types.FunctionType
    armed = [False]

    def hook(event, args, _armed=armed):
        if event == "cnn.arm":
            _armed[0] = True
        elif event == "sys.addaudithook":
            _die("tried sys.addaudithook (not allowed while grading)")
        elif not _armed[0]:
            return
        elif event.startswith("ctypes.") or event.startswith("gc.get_"):
            _die(f"used {event} (not allowed while grading)")
        elif event == "object.__setattr__" and len(args) >= 2 and args[1] in FUNCTION_INTERNALS:
            target = args[0]
            if _isinstance(target, function_type) and (
                    _str(_getattr(target, "__module__", "")).startswith(TRUSTED_MODULES)
                    or target.__code__.co_filename in trusted_files):
                _die(f"rewrote {args[1]} of {_getattr(target, '__qualname__', '?')} (not allowed while grading)")
        elif event == "open" and args and _isinstance(args[0], _str) and args[0].startswith("/proc/") \
                and args[0].endswith("/mem"):
            _die(f"opened {args[0]} (not allowed while grading)")

    sys.addaudithook(hook)


def main(_write=os.write, _exec=exec, _compile=compile, _str=str, _BaseException=BaseException) -> None:
    in_fd, out_fd = int(sys.argv[1]), int(sys.argv[2])
    runner.prepare_process()  # student output must not reach the verdict pipe
    from autograder import wire

    request = wire.recv(in_fd)
    token = request["token"]
    cells = request["cells"]
    os.close(in_fd)

    def say(line: str) -> None:
        data = (token + " " + line + "\n").encode()
        while data:
            data = data[_write(out_fd, data):]

    namespace: dict = {"__name__": "__main__"}
    _install_hook((__file__, runner.__file__))
    record = None
    bindings: tuple = ()
    cheated = ""
    for index, (kind, source, grade_id) in enumerate(cells):
        say(f"cell {index}")  # so that a cell that ends the process can be left out next time
        if kind != "setup" and record is None:
            # The instructor's cells so far have imported what the tests use: record it, then let students in.
            import types

            if "torch" in sys.modules:  # on first use (an optimizer step) it wraps torch.manual_seed & co: do it now
                import torch._dynamo  # noqa: F401
            record = _record()
            bindings = tuple((name, value) for name, value in namespace.items()
                             if isinstance(value, (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType))
                             or name == "__builtins__")
            sys.audit("cnn.arm")
        if kind == "test":
            for name, value in bindings:
                namespace[name] = value
        error = None
        try:
            _exec(_compile(source, f"<{kind} cell {grade_id or ''}>", "exec"), namespace)
        except _BaseException as exc:  # noqa: BLE001 - a failing cell is a result
            try:
                error = (_str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            except _BaseException:  # noqa: BLE001
                error = "the test failed"
        if record is None:
            continue
        replaced = _changed(record)
        if replaced and not cheated:
            cheated = "your code replaced " + ", ".join(replaced[:3]) + (" and more" if len(replaced) > 3 else "")
        if kind == "test":
            rebound = [name for name, value in bindings if namespace.get(name) is not value]
            if rebound and not cheated:
                cheated = "your code rebound " + ", ".join(rebound[:3]) + " while the tests ran"
            passed = error is None and not cheated
            message = cheated or error or ""
            say(f"test {grade_id} {1 if passed else 0} {message.encode('utf-8', 'replace').hex()}")
    say("done")
    os._exit(0)


if __name__ == "__main__":
    main()
