"""Checks for the PyTorch exercises (lessons 08 and 09), in the style of :mod:`cnn_course.checks`.

Tensors are compared by converting them to NumPy after checking they *are* tensors,
so the messages (shape per axis, first differing index, largest error) are the same as
in the NumPy lessons.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from . import checks

_Tensor = torch.Tensor
_isinstance = isinstance


def expect_tensor(actual, what: str = "the result") -> torch.Tensor:
    """Insist on a torch.Tensor (not an ndarray, a list or None)."""
    __tracebackhide__ = True
    if not _isinstance(actual, _Tensor):
        if actual is None:
            checks._fail(f"{what} is None: did you forget to `return` it?")
        checks._fail(f"{what} should be a torch.Tensor, got {type(actual).__module__}.{type(actual).__qualname__}")
    return actual


def expect_tensor_close(actual, expected: torch.Tensor, what: str = "the result", *, axes=None, hint=None,
                        rtol: float | None = None, atol: float | None = None, check_dtype: bool = True) -> None:
    """Type, shape, dtype, then values, with :func:`checks.expect_close`'s messages."""
    __tracebackhide__ = True
    actual = expect_tensor(actual, what)
    if check_dtype and actual.dtype != expected.dtype:
        checks._fail(f"{what}: expected dtype {expected.dtype}, got {actual.dtype}"
                     + (f"\n  -- {hint}" if _isinstance(hint, str) else ""))
    a = actual.detach().cpu()
    e = expected.detach().cpu()
    if a.dtype in (torch.bfloat16, torch.float16):
        a, e = a.float(), e.float()
    checks.expect_close(a.numpy(), e.numpy(), what, axes=axes, hint=hint, rtol=rtol, atol=atol, check_dtype=False)


def call(fn: Callable, *args, name: str | None = None, **kwargs):
    """Call the learner's function on copies of tensors and modules; fail if it changed an input tensor in place."""
    __tracebackhide__ = True
    name = name or getattr(fn, "__name__", "your function")
    before = [a.detach().clone() if _isinstance(a, _Tensor) else None for a in args]
    result = _call(fn, name, args, kwargs)
    for i, (a, b) in enumerate(zip(args, before)):
        if b is not None and not torch.equal(a.detach(), b):
            checks._fail(f"{name} modified its input (argument {i + 1}) in place; work on a new tensor instead")
    return result


def _call(fn, name, args, kwargs):
    __tracebackhide__ = True
    if not callable(fn):
        checks._fail(f"{name} is not a function (it is {checks.describe(fn)}); did a cell above fail to run?")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise checks.LearnerError(f"{name} is not implemented yet: replace `raise NotImplementedError()` "
                                  "with your code") from None
    except Exception as exc:
        where = checks._learner_frame(exc, fn)
        message = (f"your {name} raised {type(exc).__name__}: {exc}\n"
                   f"  while computing {checks.describe_call(name, args, kwargs)}")
        if where:
            message += f"\n  at {where}"
        raise checks.LearnerError(message) from exc


class CountTorchCalls(TorchFunctionMode):
    """Counts torch functions and tensor methods called inside ``with``: a Python loop over
    images makes the count grow with the batch size, a batched implementation does not."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def torch_calls(fn: Callable, *args, **kwargs) -> int:
    with CountTorchCalls() as counter:
        fn(*copy.deepcopy(args), **kwargs)
    return counter.count


def hook_count(model: torch.nn.Module) -> int:
    """Forward, forward-pre and backward hooks registered on any module of ``model``."""
    total = 0
    for m in model.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            total += len(getattr(m, attr, {}) or {})
    return total


def expect_number(actual, expected: float, what: str = "the result", *, rtol: float = 1e-6, atol: float = 1e-8,
                  hint: str | None = None) -> None:
    """A number (Python float, NumPy scalar or one-element tensor) close to ``expected``."""
    __tracebackhide__ = True
    try:
        value = float(actual)
    except (TypeError, ValueError):
        checks._fail(f"{what} should be a number, got {checks.describe(actual)}")
    checks.expect_close(np.array(value), np.array(float(expected)), what, rtol=rtol, atol=atol, hint=hint)
