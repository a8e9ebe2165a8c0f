"""How PyTorch objects cross between the grader and the process that runs student code.

Grader to student (trusted direction): the arguments of a call, pickled, as they are
(modules, tensors, optimizers, generators...). Classes and functions that the test
cell defined itself (``class _Res(nn.Module)``) are sent by name, with the source of
the cell's definitions, which the student's process runs in a copy of the instructor's
setup namespace; a student function passed along is sent by name too.

Student to grader (untrusted direction): data only (:mod:`autograder.wire`). After a
call, :func:`report` describes what became of each argument there: a tensor's values
and gradient; a module's parameters and buffers, training modes, ``requires_grad``
flags, plain attributes (numbers, strings, booleans: a spy's ``saw_grad``), how
many hooks each of its hook tables holds and its submodules' names and classes; another object's plain attributes (a
scheduler's ``last_epoch``). :func:`apply` copies that, checked against the grader's
own object (same names, shapes, dtypes, types), into the objects the test holds, so
the instructor's checks (``expect_unchanged``, ``expect_no_hooks``, the in-place edit
check) see what the student's function did. A hook left behind there becomes a no-op
hook here (:func:`cnn_course.model_checks.left_behind`); a global one is counted on
the model; a submodule added, removed or replaced there adds one here
(``changed_by_the_call``), so ``expect_unchanged`` sees the structure change.
"""

from __future__ import annotations

import ast
import io
import pickle
import textwrap
import types

HOOK_TABLES = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
PLAIN = (bool, int, float, str)


# --------------------------------------------------------------------------- grader side

def definitions(cell_source: str) -> str:
    """The top-level classes and functions a test cell defines (sent with calls made from it)."""
    try:
        body = ast.parse(textwrap.dedent(cell_source)).body
    except SyntaxError:
        return ""
    return ast.unparse(ast.Module([n for n in body if isinstance(n, (ast.ClassDef, ast.FunctionDef))], []))


def dumps_call(args: tuple, kwargs: dict, theirs: dict) -> bytes:
    """Pickle a call's arguments for the student's process. ``theirs``: id(stand-in) -> ("student", name) for
    a student's function, ("handle", number) for an object that lives there (a model the student built)."""
    from .wire import NotData

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            reference = theirs.get(id(obj))
            if reference is not None:
                return reference
            if isinstance(obj, (type, types.FunctionType)) and getattr(obj, "__module__", None) == "__main__":
                if "<" in obj.__qualname__:
                    raise NotData(f"{obj.__qualname__} (define it at the top level of the test cell)")
                return ("test", obj.__qualname__)
            return None

    buf = io.BytesIO()
    try:
        Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump((tuple(args), dict(kwargs)))
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise NotData(f"an object that cannot be sent ({exc})") from None
    return buf.getvalue()


def _copy_into(target, value) -> None:
    import torch

    if not isinstance(value, torch.Tensor) or torch.equal(target.detach(), value) and target.dtype == value.dtype:
        return
    with torch.no_grad():
        if value.shape == target.shape and value.dtype == target.dtype:
            target.copy_(value)
        else:
            target.data = value


def _set_plain(obj, attrs) -> None:
    """Copy attributes the object already has, of the same plain type."""
    if not isinstance(attrs, dict):
        return
    own = getattr(obj, "__dict__", {})
    for key, value in attrs.items():
        if isinstance(key, str) and type(value) in PLAIN and type(own.get(key)) is type(value):
            own[key] = value


def apply(obj, rep) -> None:
    """Make ``obj`` (the test's object) show what the student's function did to its copy (see :func:`report`)."""
    import torch
    from torch import nn

    from cnn_course import model_checks

    if not isinstance(rep, dict):
        return
    kind = rep.get("kind")
    if kind == "tensor" and isinstance(obj, torch.Tensor):
        _copy_into(obj, rep.get("value"))
        grad = rep.get("grad")
        if isinstance(grad, torch.Tensor) and grad.shape == obj.shape and grad.dtype == obj.dtype:
            obj.grad = grad
    elif kind == "module" and isinstance(obj, nn.Module):
        state = obj.state_dict(keep_vars=True)
        for key, value in (rep.get("state") or {}).items():
            if key in state and state[key] is not None:
                _copy_into(state[key], value)
        modules = list(obj.named_modules(remove_duplicate=False))
        reported = [e for e in rep.get("modules") or [] if isinstance(e, list) and len(e) == 4]
        if [[n, type(m).__name__] for n, m in modules] != [e[:2] for e in reported]:
            obj.add_module("changed_by_the_call", nn.Identity())  # its structure changed there: so it does here
        else:
            for (_, module), (_, _, attrs, hooks) in zip(modules, reported):
                _set_plain(module, attrs)
                for table, count in zip(HOOK_TABLES, hooks if isinstance(hooks, list) else []):
                    _add_hooks(getattr(module, table), count)
        flags = rep.get("requires_grad") or []
        params = [p for _, p in obj.named_parameters(remove_duplicate=False)]
        if len(flags) == len(params):
            for param, flag in zip(params, flags):
                if type(flag) is bool and param.is_leaf:
                    param.requires_grad_(flag)
        for table, count in zip(HOOK_TABLES, rep.get("global_hooks") or []):  # counted on the model itself
            _add_hooks(getattr(obj, table), len(getattr(obj, table)) + count)
        stale = [(s[0], s[1]) for s in rep.get("stale") or [] if isinstance(s, list) and len(s) == 2]
        for probe in model_checks.GradientProbe.live:
            if probe.model is obj:
                probe.stale += stale
    elif kind == "attrs":
        _set_plain(obj, rep.get("attrs"))


def _add_hooks(table, count) -> None:
    from cnn_course.model_checks import left_behind

    key = -1
    for _ in range(min(count, 1000) - len(table) if type(count) is int else 0):
        while key in table:  # negative: torch's own handles count up from 0
            key -= 1
        table[key] = left_behind


# --------------------------------------------------------------------------- student side

def loads_call(data: bytes, test_namespace: dict, student_namespace: dict, handles: list):
    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid):
            kind, name = pid
            if kind == "handle":
                return handles[name]
            return (student_namespace if kind == "student" else test_namespace)[name]

    return Unpickler(io.BytesIO(data)).load()


def keep_handles(value, handles: list):
    """``value`` with every module in it replaced by a :class:`wire.Handle` (the module is kept in ``handles``)."""
    from torch import nn

    from .wire import Handle

    if isinstance(value, nn.Module):
        handles.append(value)
        return Handle(len(handles) - 1)
    if type(value) in (list, tuple):
        return type(value)(keep_handles(v, handles) for v in value)
    if type(value) is dict:
        return {k: keep_handles(v, handles) for k, v in value.items()}
    return value


def signature(fn) -> list | None:
    """A function's parameters as data: [name, kind, has a default, the default if it is plain data, else None]."""
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    return [[p.name, int(p.kind), p.default is not p.empty,
             p.default if p.default is None or type(p.default) in PLAIN else None] for p in params]


def global_hooks() -> list[int]:
    from torch.nn.modules import module

    return [len(getattr(module, "_global" + table)) for table in HOOK_TABLES]


def report(value, probe=None, global_before=None):
    """What became of one argument of a call, as data (see :func:`apply`)."""
    import torch
    from torch import nn

    if isinstance(value, torch.Tensor):
        return {"kind": "tensor", "value": value.detach(),
                "grad": None if value.grad is None else value.grad.detach()}
    if isinstance(value, nn.Module):
        return {
            "kind": "module",
            "state": {k: v.detach() for k, v in value.state_dict(keep_vars=True).items() if v is not None},
            "modules": [[name, type(m).__name__, {k: v for k, v in vars(m).items() if type(v) in PLAIN},
                         [len(getattr(m, t, None) or {}) for t in HOOK_TABLES]]
                        for name, m in value.named_modules(remove_duplicate=False)],
            "requires_grad": [bool(p.requires_grad) for _, p in value.named_parameters(remove_duplicate=False)],
            "global_hooks": [after - before for after, before in zip(global_hooks(), global_before or global_hooks())],
            "stale": [list(s) for s in probe.stale] if probe is not None else [],
        }
    if hasattr(value, "__dict__") and not isinstance(value, (type, types.ModuleType, types.FunctionType)):
        return {"kind": "attrs", "attrs": {k: v for k, v in vars(value).items() if type(v) in PLAIN}}
    return None
