"""Checks for the PyTorch exercises (lessons 08 and 09), in the style of :mod:`cnn_course.checks`.

``call`` and ``hook_count`` are :mod:`cnn_course.model_checks`'s (the learner's function
called on the test's own tensors and modules; hooks counted on a model and globally).

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
from .model_checks import call_on as call  # noqa: F401  (the learner's function, on the test's own objects)
from .model_checks import hook_count  # noqa: F401

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
    remote = getattr(fn, "count_torch_calls", None)  # the grader's stand-in for a function run elsewhere
    if remote is not None:
        return remote(*args, **kwargs)
    with CountTorchCalls() as counter:
        fn(*copy.deepcopy(args), **kwargs)
    return counter.count


def _output_and_input_gradient(fn: Callable, x: torch.Tensor, upstream: torch.Tensor, *args, **kwargs):
    """``fn(x', *args, **kwargs)`` for ``x'`` a leaf copy of ``x`` that requires gradients, then the gradient of
    ``(output * upstream).sum()`` with respect to ``x'``: ``(output, gradient)``, the gradient None when no
    gradient reached ``x'`` (an output built from ``x.detach()``, NumPy, ``torch.no_grad()``...)."""
    leaf = x.detach().clone().requires_grad_(True)
    out = fn(leaf, *args, **kwargs)
    if not _isinstance(out, _Tensor):
        return out, None
    if not out.requires_grad:
        return out.detach(), None
    (out * upstream).sum().backward()
    return out.detach(), leaf.grad


def output_and_gradient(fn: Callable, x: torch.Tensor, upstream: torch.Tensor, *args, **kwargs):
    """The learner's ``fn`` on a copy of ``x`` that requires gradients, and the gradient that ``upstream``
    (a tensor of the output's shape) back-propagates to ``x`` through it: ``(output, gradient or None)``.

    The backward pass runs where ``fn`` runs: here in the notebook; in the grader's verification, in the
    student's process (a question, as :mod:`cnn_course.model_checks` asks a model), and only data comes back.
    """
    __tracebackhide__ = True
    runner = getattr(fn, "_runner", None)  # the grader's stand-in for a function that runs elsewhere
    if runner is not None and hasattr(runner, "invoke"):
        return runner.invoke(getattr(fn, "__name__", "your function"), "", (fn, x, upstream, *args), kwargs,
                             ask="output_and_input_gradient")[0]
    name = getattr(fn, "__name__", "your function")

    def run(x, upstream, *args, **kwargs):
        return _output_and_input_gradient(fn, x, upstream, *args, **kwargs)

    run.__name__ = name
    return call(run, x, upstream, *args, name=name, **kwargs)


def _register_question() -> None:
    from . import model_checks

    model_checks.QUESTIONS["output_and_input_gradient"] = _output_and_input_gradient


_register_question()


def expect_number(actual, expected: float, what: str = "the result", *, rtol: float = 1e-6, atol: float = 1e-8,
                  hint: str | None = None) -> None:
    """A number (Python float, NumPy scalar or one-element tensor) close to ``expected``."""
    __tracebackhide__ = True
    try:
        value = float(actual)
    except (TypeError, ValueError):
        checks._fail(f"{what} should be a number, got {checks.describe(actual)}")
    checks.expect_close(np.array(value), np.array(float(expected)), what, rtol=rtol, atol=atol, hint=hint)
